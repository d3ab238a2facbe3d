"""Structured JSON logs (Powertools Logger) for a function and the library beneath it, and
the one correlation id every log line of a piece of work carries.

The correlation id is the API request's id (API Gateway's `requestContext.requestId`,
also its `apigw-requestid` reply header). What the request starts keeps it: an upload
records it in `v1.upload.created`, its verification logs under it, and a job enqueued
under it stores it in its payload (`correlationId`), so the worker's lines carry it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from slipway import metrics, tracing

# the request id of an HTTP API (payload 2.0) event; absent from queue and schedule events
HTTP_REQUEST_ID = "requestContext.requestId"
_logger: Logger | None = None


def setup(service: str) -> Logger:
    """A function's logger; library loggers (`slipway.*`) propagate to it as JSON too."""
    global _logger
    logger = Logger(service=service)
    logging.getLogger("slipway")  # make sure the parent exists to receive the config
    copy_config_to_registered_loggers(source_logger=logger, include={"slipway"})
    _logger = logger
    return logger


def correlation_id() -> str | None:
    """The id the current work logs under (None outside a function, or if none is set)."""
    value = _logger.get_correlation_id() if _logger else None
    return str(value) if value else None


def correlation() -> dict[str, str]:
    """The ids a job's payload keeps of the work that enqueued it: `correlationId` (its
    worker logs under it) and `traceId` (X-Ray), each only when there is one."""
    ids = {"correlationId": correlation_id(), "traceId": tracing.trace_id()}
    return {key: value for key, value in ids.items() if value}


def set_correlation_id(value: str | None) -> None:
    if _logger is not None:
        _logger.set_correlation_id(value)


def adopt(lookup: Callable[[], str | None]) -> None:
    """Work that arrived without a correlation id (a queue message) takes the one
    `lookup` finds for it; work that has one keeps it."""
    if _logger is not None and correlation_id() is None:
        set_correlation_id(lookup())


@contextmanager
def correlated(value: str | None) -> Iterator[None]:
    """Log under `value` (if it is one) inside the block, under the id before it after."""
    before = correlation_id()
    if value:
        set_correlation_id(value)
    try:
        yield
    finally:
        set_correlation_id(before)


def entry[H: Callable[..., Any]](logger: Logger, tracer: tracing.HandlerTracer) -> Callable[[H], H]:
    """What every function's handler wears: the Tracer's segment (no response captured:
    it may hold signed URLs), metrics flushed at its end, and the Logger's Lambda context
    with the correlation id of this invocation: an HTTP request's id, else none (so none
    is left over from the instance's previous invocation)."""

    def wrap(handler: H) -> H:
        logged = logger.inject_lambda_context(handler, correlation_id_path=HTTP_REQUEST_ID)
        traced = tracer.capture_lambda_handler(metrics.flushed(logged), capture_response=False)
        return traced  # type: ignore[return-value]

    return wrap
