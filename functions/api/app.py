"""api: the read side and small commands — uploads, jobs, slides (status, DZI, viewer),
telemetry sessions and finalise, the operator page and its data, the upload page, the
local stack's development sign-in, health and the OpenAPI document."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from slipway import logs, tracing
from slipway.api import dev_signin, jobs, meta, ops, slides, telemetry, upload_page, uploads
from slipway.api.http import resolver

logger = logs.setup("api")
tracer = tracing.setup("api")
app = resolver(
    uploads.routes(),
    jobs.routes(),
    slides.routes(),
    telemetry.routes(),
    ops.routes(),
    upload_page.routes(),
    dev_signin.routes(),
    meta.routes(),
)


@logs.entry(logger, tracer)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
