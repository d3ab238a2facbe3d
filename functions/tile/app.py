"""tile: woken by the tile queue, claims tile jobs and builds each slide's Deep Zoom
pyramid (pyvips dzsave) in the tiles bucket."""

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from slipway import logs, tiling, worker

logger = logs.setup("tile")
processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    def on_signal(record: SQSRecord) -> None:
        worker.drain(
            "tile",
            tiling.run_job,
            f"tile:{context.aws_request_id}",
            lambda: context.get_remaining_time_in_millis() / 1000,
        )

    return process_partial_response(event, on_signal, processor, context)
