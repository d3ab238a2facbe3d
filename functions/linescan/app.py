"""linescan: PUT/GET /v1/line-scans/{scanId}/tiles/{tileId}, POST .../upload and
.../complete (pre-signed PUTs for tiles above the inline limit), GET /v1/line-scans/{scanId}.
DB-first tile uploads (seed adr-line-scan-tile-upload)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from slipway import logs, tracing
from slipway.api import linescan
from slipway.api.http import resolver

logger = logs.setup("linescan")
tracer = tracing.setup("linescan")
app = resolver(linescan.routes())


@logs.entry(logger, tracer)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
