"""upload_complete: the upload-events queue (S3 ObjectCreated notifications and
verification requests) and POST /v1/uploads/{uploadId}/complete.

Verifies size and checksum, hashes (SHA-256 + BLAKE3), stores content-addressed, marks
the upload ready or failed and enqueues its jobs. Safe under duplicate, late or lost
notifications (see slipway.uploads)."""

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from slipway import logs, messages, tracing, uploads
from slipway.api import uploads as upload_routes
from slipway.api.http import resolver

logger = logs.setup("upload_complete")
tracer = tracing.setup("upload_complete")
app = resolver(upload_routes.routes())
processor = BatchProcessor(event_type=EventType.SQS)


# a malformed message is logged and dropped at once; a failure that may pass is retried
on_message = messages.consumer(
    messages.upload_event, lambda body: uploads.on_notification(body, "fn:upload_complete")
)


@logs.entry(logger, tracer)
def handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    if "requestContext" in event:  # the HTTP route
        return app.resolve(event, context)
    return process_partial_response(event, on_message, processor, context)
