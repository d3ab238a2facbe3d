"""tile: woken by the tile queue, claims tile jobs and builds each slide's Deep Zoom
pyramid (pyvips dzsave) in the tiles bucket; a slide over the fan-out threshold is tiled
as region jobs and a finish job on the same queue (docs/tiling.md#fan-out)."""

from slipway import logs, regions, tiling, tracing, worker

logger = logs.setup("tile")
tracer = tracing.setup("tile")
handler = logs.entry(logger, tracer)(
    worker.signal_handler(
        "tile",
        tiling.run_job,
        {"tile_finish": regions.run_finish, "tile_region": regions.run_region},
    )
)
