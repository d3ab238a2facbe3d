"""tile: woken by the tile queue, claims tile jobs and builds each slide's Deep Zoom
pyramid (pyvips dzsave) in the tiles bucket."""

from slipway import logs, tiling, worker

logger = logs.setup("tile")
handler = logger.inject_lambda_context(worker.signal_handler("tile", tiling.run_job))
