"""presign: POST /v1/uploads and POST /v1/uploads/{uploadId}/parts.

Records the upload (pending) first, then signs where its bytes go."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from slipway import logs, tracing
from slipway.api import uploads
from slipway.api.http import resolver

logger = logs.setup("presign")
tracer = tracing.setup("presign")
app = resolver(uploads.routes())


@logs.entry(logger, tracer)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
