"""X-Ray traces (Powertools Tracer): a function's segment, a subsegment per piece of work
annotated with its ids (`upload_id`, `job_id`, `job_type`), S3 and SQS calls as their own
subsegments (botocore is patched).

Outside Lambda (the local stack, tests, the CLI) there is no X-Ray daemon. Tracing is off
there, as Powertools decides it (no LAMBDA_TASK_ROOT, or POWERTOOLS_TRACE_DISABLED, which
the local stack sets): then the X-Ray SDK is not even imported (it costs a cold start
about a tenth), the handler is not wrapped, and every helper here is a no-op.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

log = logging.getLogger(__name__)
PATCHED = ("botocore",)  # not patch_all: importing every library X-Ray knows costs cold start
_tracer: Tracer | None = None


class HandlerTracer(Protocol):
    """What a function needs of its tracer (Powertools' Tracer, or `Off`)."""

    disabled: bool

    def capture_lambda_handler(
        self, lambda_handler: Callable[..., Any], capture_response: bool | None = None
    ) -> Callable[..., Any]: ...


class Off:
    """The tracer where tracing is off: the handler runs as it is."""

    disabled = True

    def capture_lambda_handler(
        self, lambda_handler: Callable[..., Any], capture_response: bool | None = None
    ) -> Callable[..., Any]:
        return lambda_handler


def off() -> bool:
    """Powertools' own rule (Tracer._is_tracer_disabled), without importing the SDK."""
    from aws_lambda_powertools.shared import constants
    from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return True
    emulated = os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV)
    return not os.getenv(constants.LAMBDA_TASK_ROOT_ENV) or bool(emulated)


def setup(service: str) -> HandlerTracer:
    """The function's tracer (one per process; the library's spans use it)."""
    global _tracer
    if off():
        _tracer = None
        return Off()
    from aws_lambda_powertools import Tracer

    _tracer = Tracer(service=service, patch_modules=PATCHED)
    return _tracer


def enabled() -> bool:
    return _tracer is not None and not _tracer.disabled


def annotate(**annotations: str) -> None:
    """Annotate what is being traced now (the function's segment, or the current span)."""
    if not enabled():
        return
    assert _tracer is not None
    try:
        for key, value in annotations.items():
            _tracer.put_annotation(key=key, value=value)
    except Exception:
        log.warning("trace annotations dropped", exc_info=True)


@contextmanager
def span(name: str, **annotations: str | None) -> Iterator[None]:
    """A subsegment `## name` with the given ids as annotations (None values left out).
    A tracing failure is logged, never raised into the work."""
    if not enabled():
        yield
        return
    assert _tracer is not None
    with _tracer.provider.in_subsegment(name=f"## {name}") as subsegment:
        try:
            for key, value in annotations.items():
                if value is not None:
                    subsegment.put_annotation(key=key, value=value)
        except Exception:
            log.warning("trace annotations dropped", exc_info=True)
        yield


def trace_id() -> str | None:
    """The X-Ray trace id of the current invocation (`1-…-…`), from the header Lambda
    sets; None outside Lambda or untraced."""
    for part in os.environ.get("_X_AMZN_TRACE_ID", "").split(";"):
        key, _, value = part.partition("=")
        if key == "Root" and value:
            return value
    return None
