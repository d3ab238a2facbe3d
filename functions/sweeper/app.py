"""sweeper (scheduled): repairs lost notifications, expires abandoned uploads, deletes
orphaned objects and re-signals due jobs (slipway.sweeper)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from slipway import logs, sweeper, tracing

logger = logs.setup("sweeper")
tracer = tracing.setup("sweeper")


@logs.entry(logger, tracer)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return sweeper.run().__dict__
