"""api: the read side and small commands — uploads, jobs, slides (status, DZI, viewer),
telemetry sessions and finalise, health and the OpenAPI document."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from slipway import logs
from slipway.api import jobs, meta, slides, telemetry, uploads
from slipway.api.http import resolver

logger = logs.setup("api")
app = resolver(uploads.routes(), jobs.routes(), slides.routes(), telemetry.routes(), meta.routes())


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
