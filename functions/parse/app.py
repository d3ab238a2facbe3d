"""parse: woken by the parse queue, claims parse jobs and turns telemetry CSV/GPX into
canonical Parquet (pyarrow), settling each session ready or failed."""

from slipway import logs, worker
from slipway.telemetry import parse

logger = logs.setup("parse")
handler = logger.inject_lambda_context(worker.signal_handler("parse", parse.run_job))
