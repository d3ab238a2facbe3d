"""project: GET /v1/events (long-poll over the log) and, on a schedule, the invariant
check: replay the log and report every projection row it does not explain, and re-hash a
sample of the stored blobs."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from slipway import logs, tracing
from slipway.api import events
from slipway.api.http import resolver
from slipway.config import settings

logger = logs.setup("project")
tracer = tracing.setup("project")
app = resolver(events.routes())


@logs.entry(logger, tracer)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "requestContext" in event:
        return app.resolve(event, context)
    from slipway import verification  # the schedule's path: an HTTP cold start skips it

    report = verification.run(blobs_checked=settings().blob_audit_sample)
    if not report.ok:
        logger.error("projection invariant violated", extra={"report": report.summary()})
    return {"ok": report.ok, **report.summary()}
