"""parse: woken by the parse queue, claims parse jobs and turns telemetry CSV/GPX into
canonical Parquet (pyarrow), settling each session ready or failed."""

from slipway import logs, tracing, worker
from slipway.telemetry import parse

logger = logs.setup("parse")
tracer = tracing.setup("parse")
handler = logs.entry(logger, tracer)(worker.signal_handler("parse", parse.run_job))
