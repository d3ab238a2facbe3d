"""slipway.metrics: what a handler's EMF lines hold, and that emitting never breaks one."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from slipway import metrics
from slipway.events import NewEvent


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Slipway/test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    metrics.collecting(False)
    yield
    metrics.collecting(False)


def emf_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def only(lines: list[dict[str, Any]], **dimensions: str | None) -> dict[str, Any]:
    found = [ln for ln in lines if all(ln.get(k) == v for k, v in dimensions.items())]
    assert len(found) == 1, (dimensions, lines)
    return found[0]


def test_a_handler_flushes_one_line_per_set_of_dimensions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @metrics.flushed
    def handler(event: Any, context: Any) -> str:
        metrics.job_ended("tile", "SUCCEEDED", 2.5)
        metrics.job_ended("tile", "SUCCEEDED", 1.5)
        metrics.job_attempt_failed("tile", "FAILED", "UNSUPPORTED_FORMAT")
        metrics.job_attempt_failed("parse", "QUEUED", "STORAGE_FAILED")
        metrics.upload_ready("slide", 12345, 0.75)
        metrics.events_appended(
            [
                NewEvent("v1.job.queued", "job", None, {"type": "tile"}),
                NewEvent("v1.job.queued", "job", None, {"type": "tile"}),
                NewEvent("v1.upload.ready", "upload", None, {}),
            ]
        )
        return "done"

    assert handler({}, None) == "done"
    lines = emf_lines(capsys.readouterr().out)
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Slipway/test"
        assert "service" not in line, "no per-function dimension"
    tile = only(lines, JobType="tile", Code=None)
    assert tile["JobsSucceeded"] == [2.0], "counts of one line are summed"
    assert tile["JobRunSeconds"] == [2.5, 1.5], "times are kept one by one"
    assert tile["JobsQueued"] == [2.0]
    assert tile["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["JobType"]]
    failed = only(lines, JobType="tile", Code="UNSUPPORTED_FORMAT")
    assert failed["JobsFailed"] == [1.0]
    assert failed["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["JobType"],
        ["JobType", "Code"],
    ]
    assert only(lines, JobType="parse", Code="STORAGE_FAILED")["JobsRetried"] == [1.0]
    upload = only(lines, Kind="slide")
    assert (upload["UploadsReady"], upload["BytesVerified"], upload["VerifySeconds"]) == (
        [1.0],
        [12345.0],
        [0.75],
    )
    units = {m["Name"]: m["Unit"] for m in upload["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"UploadsReady": "Count", "BytesVerified": "Bytes", "VerifySeconds": "Seconds"}
    assert only(lines, SubjectKind="job")["EventsAppended"] == [2.0]
    assert only(lines, SubjectKind="upload")["EventsAppended"] == [1.0]


def test_tiles_and_rows_come_from_a_jobs_result_events(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.collecting()
    metrics.job_results("tile", [NewEvent("v1.slide.tiled", "slide", None, {"tileCount": 341})])
    streams = [{"name": "gnss_pvt", "rows": 600}, {"name": "sensors", "rows": 40}]
    metrics.job_results(
        "parse", [NewEvent("v1.session.ready", "session", None, {"streams": streams})]
    )
    metrics.flush()
    lines = emf_lines(capsys.readouterr().out)
    assert only(lines, JobType="tile")["TilesWritten"] == [341.0]
    assert only(lines, JobType="parse")["RowsParsed"] == [640.0]


def test_the_handler_flushes_when_it_raises(capsys: pytest.CaptureFixture[str]) -> None:
    @metrics.flushed
    def handler() -> None:
        metrics.upload_failed("telemetry", "CHECKSUM_MISMATCH")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        handler()
    line = only(emf_lines(capsys.readouterr().out), Kind="telemetry")
    assert line["Code"] == "CHECKSUM_MISMATCH" and line["UploadsFailed"] == [1.0]
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Kind"], ["Code"]]


def test_nothing_is_collected_outside_a_handler(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.upload_created("slide")  # the CLI, a test, a benchmark: no EMF on their stdout
    metrics.flush()
    assert capsys.readouterr().out == ""


def test_emitting_never_breaks_the_work(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics.collecting()
    metrics.put("NoSuchMetric", 1, Kind="slide")  # not catalogued: dropped, logged
    metrics.put("UploadsCreated", 1, JobType="tile")  # wrong dimensions: dropped
    metrics.put("UploadsCreated", float("nan"), Kind="x")  # NaN is no JSON: dropped
    metrics.put("UploadsCreated", "many", Kind="y")  # type: ignore[arg-type]
    metrics.put("UploadsCreated", 1, Kind="z")
    metrics.flush()
    assert [ln.get("Kind") for ln in emf_lines(capsys.readouterr().out)] == ["z"]

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stdout is gone")

    metrics.upload_created("slide")
    monkeypatch.setattr("sys.stdout", Broken())
    metrics.flush()  # logged, not raised


def test_a_full_metric_is_flushed_before_emf_s_limit(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.collecting()
    for i in range(metrics.MAX_VALUES + 1):
        metrics.put("JobRunSeconds", i, JobType="tile")
    first = emf_lines(capsys.readouterr().out)
    assert len(first) == 1 and len(first[0]["JobRunSeconds"]) == metrics.MAX_VALUES
    metrics.flush()
    assert emf_lines(capsys.readouterr().out)[0]["JobRunSeconds"] == [100.0]


def test_metrics_can_be_switched_off(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    metrics.collecting()
    metrics.upload_created("slide")
    metrics.flush()
    assert capsys.readouterr().out == ""


def test_the_queue_figures_are_gauges(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.collecting()
    metrics.queue("tile", depth=3, oldest_seconds=42.5, running=1)
    metrics.flush()
    line = only(emf_lines(capsys.readouterr().out), JobType="tile")
    assert (line["QueueDepth"], line["OldestQueuedJobAge"], line["JobsRunning"]) == (
        [3.0],
        [42.5],
        [1.0],
    )
