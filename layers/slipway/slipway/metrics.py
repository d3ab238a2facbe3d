"""Operational metrics as CloudWatch EMF lines (Powertools Metrics), one helper per figure.

Figures are collected only inside a function's handler (`flushed`, the equivalent of
Powertools' `log_metrics`), which prints them to stdout as EMF when the invocation ends:
one line per set of dimensions. Outside a handler (the CLI, tests, benchmarks) the helpers
do nothing. Emitting never breaks a request: a failure to build or print a line is
logged and dropped. docs/operations.md lists every metric; template.yaml alarms on some.

Namespace: POWERTOOLS_METRICS_NAMESPACE (the template sets `Slipway/<stack name>`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slipway.events import Event, NewEvent

log = logging.getLogger(__name__)
DEFAULT_NAMESPACE = "Slipway"
MAX_VALUES = 100  # EMF's limit of values per metric in one line

# Every metric the code emits: name -> (unit, the dimension sets it is published under).
# test_template_agrees checks that each alarm and dashboard widget names one of these.
CATALOGUE: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "UploadsCreated": ("Count", (("Kind",),)),
    "UploadsReady": ("Count", (("Kind",),)),
    "UploadsFailed": ("Count", (("Kind",), ("Code",))),
    "BytesVerified": ("Bytes", (("Kind",),)),
    "VerifySeconds": ("Seconds", (("Kind",),)),
    "JobsQueued": ("Count", (("JobType",),)),
    "JobsSucceeded": ("Count", (("JobType",),)),
    "JobsFailed": ("Count", (("JobType",), ("JobType", "Code"))),
    "JobsRetried": ("Count", (("JobType",), ("JobType", "Code"))),
    "JobsCancelled": ("Count", (("JobType",),)),
    "JobLeasesLost": ("Count", (("JobType",),)),
    "JobRunSeconds": ("Seconds", (("JobType",),)),
    "QueueDepth": ("Count", (("JobType",),)),
    "OldestQueuedJobAge": ("Seconds", (("JobType",),)),
    "JobsRunning": ("Count", (("JobType",),)),
    "TilesWritten": ("Count", (("JobType",),)),
    "RowsParsed": ("Count", (("JobType",),)),
    "EventsAppended": ("Count", (("SubjectKind",),)),
    "LongPollWaits": ("Count", (("Stream",),)),
    "LongPollWaitSeconds": ("Seconds", (("Stream",),)),
}
# Counts of things that happened, summed within a line (Sum is what alarms read); every
# other value (times, sizes, gauges, a job's tiles or rows) is kept as it was measured.
COUNTERS = {
    "UploadsCreated",
    "UploadsReady",
    "UploadsFailed",
    "JobsQueued",
    "JobsSucceeded",
    "JobsFailed",
    "JobsRetried",
    "JobsCancelled",
    "JobLeasesLost",
    "EventsAppended",
    "LongPollWaits",
}

# one line: its dimension values and the dimension sets it is published under
_Key = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, ...], ...]]
_lock = threading.Lock()
_collecting = False
_pending: dict[_Key, dict[str, list[float]]] = {}


def put(name: str, value: float, **dimensions: str) -> None:
    """Add one value of a catalogued metric (a counter's values add up to one per line)."""
    if not _collecting:
        return
    try:
        _, sets = CATALOGUE[name]
        needed = {d for dims in sets for d in dims}
        if set(dimensions) != needed:
            raise ValueError(f"{name} takes dimensions {sorted(needed)}, got {sorted(dimensions)}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name}: {value} is not a finite number")
        key = (tuple(sorted((k, str(v) or "-") for k, v in dimensions.items())), sets)
        with _lock:
            values = _pending.setdefault(key, {}).setdefault(name, [])
            if name in COUNTERS and values:
                values[0] += value
            else:
                values.append(value)
            full = len(values) >= MAX_VALUES
        if full:
            flush()
    except Exception:
        log.warning("metric %s dropped", name, exc_info=True)


def _line(key: _Key, figures: dict[str, list[float]]) -> dict[str, Any]:
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    # service="": no `service` dimension (which function counted a figure is not part of it)
    provider = AmazonCloudWatchEMFProvider(namespace=namespace, service="")
    named, sets = key
    dims = dict(named)
    first, *more = sets
    for name in first:
        provider.add_dimension(name, dims[name])
    for extra in more:
        provider.add_dimensions(**{n: dims[n] for n in extra})
    for name, recorded in figures.items():
        for value in recorded:
            provider.add_metric(name=name, unit=CATALOGUE[name][0], value=value)
    return dict(provider.serialize_metric_set())


def flush() -> None:
    """Print what was collected as EMF lines (one per set of dimension values)."""
    import json

    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    with _lock:
        pending = dict(_pending)
        _pending.clear()
    if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED, as Powertools' own flush
        return
    for key, figures in pending.items():
        try:
            line = _line(key, figures)
            print(json.dumps(line, separators=(",", ":")), flush=True)
        except Exception:
            log.warning("metrics line dropped", extra={"dimensions": dict(key[0])}, exc_info=True)


def flushed[F: Callable[..., Any]](handler: F) -> F:
    """A Lambda handler that collects metrics while it runs and flushes them at its end,
    whether it returns or raises (log_metrics, for metrics of many dimension sets)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _collecting
        _collecting = True
        try:
            return handler(*args, **kwargs)
        finally:
            flush()

    return wrapper  # type: ignore[return-value]


def collecting(on: bool = True) -> None:
    """Start (or stop) collecting outside a handler (tests)."""
    global _collecting
    _collecting = on
    if not on:
        with _lock:
            _pending.clear()


# --- the figures, one line at each call site -------------------------------------------


def upload_created(kind: str) -> None:
    put("UploadsCreated", 1, Kind=kind)


def upload_ready(kind: str, size: int, seconds: float) -> None:
    put("UploadsReady", 1, Kind=kind)
    put("BytesVerified", size, Kind=kind)
    put("VerifySeconds", seconds, Kind=kind)


def upload_failed(kind: str, code: str) -> None:
    put("UploadsFailed", 1, Kind=kind, Code=code)


def events_appended(appended: Iterable[Event | NewEvent]) -> None:
    """Events submitted to the log (counted before their commit); a new job counts too."""
    for event in appended:
        put("EventsAppended", 1, SubjectKind=event.subject_kind)
        if event.event_type == "v1.job.queued":
            put("JobsQueued", 1, JobType=str(event.payload.get("type")))


def job_ended(job_type: str, status: str | None, seconds: float) -> None:
    """One attempt's end as the worker saw it: SUCCEEDED, CANCELLED, None (lease lost),
    or FAILED / QUEUED (counted with their code by `job_attempt_failed`)."""
    put("JobRunSeconds", seconds, JobType=job_type)
    if status == "SUCCEEDED":
        put("JobsSucceeded", 1, JobType=job_type)
    elif status == "CANCELLED":
        put("JobsCancelled", 1, JobType=job_type)
    elif status is None:
        put("JobLeasesLost", 1, JobType=job_type)


def job_attempt_failed(job_type: str, status: str, code: str) -> None:
    """A failed attempt as recorded: FAILED for good, or QUEUED again (a retry is due)."""
    put("JobsFailed" if status == "FAILED" else "JobsRetried", 1, JobType=job_type, Code=code)


def job_results(job_type: str, results: Iterable[NewEvent]) -> None:
    """Tiles written and rows parsed, read from a succeeded job's result events."""
    for event in results:
        payload = event.payload
        if event.event_type == "v1.slide.tiled" and payload.get("tileCount") is not None:
            put("TilesWritten", payload["tileCount"], JobType=job_type)
        elif event.event_type == "v1.session.ready":
            rows = sum(int(s.get("rows") or 0) for s in payload.get("streams") or [])
            put("RowsParsed", rows, JobType=job_type)


def queue(job_type: str, depth: int, oldest_seconds: float, running: int) -> None:
    put("QueueDepth", depth, JobType=job_type)
    put("OldestQueuedJobAge", oldest_seconds, JobType=job_type)
    put("JobsRunning", running, JobType=job_type)


def long_poll(stream: str, waited_seconds: float) -> None:
    put("LongPollWaits", 1, Stream=stream)
    put("LongPollWaitSeconds", waited_seconds, Stream=stream)
