"""template.yaml and the code describe the same system (nothing that could drift)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from slipway.api.routes import all_routers
from slipway_local.template import Template
from tests.support import ROOT


@pytest.fixture(scope="module")
def template() -> Template:
    return Template(
        ROOT / "template.yaml",
        "slipway",
        {"DatabaseUrl": "postgresql://x"},
        "http://127.0.0.1:4566",
    )


def load_function(code_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fn_{code_dir.name}", code_dir / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def powertools_paths(resolver: object) -> set[str]:
    """'METHOD /path/{param}' for every route a resolver serves."""
    found = set()
    for route in resolver._static_routes + resolver._dynamic_routes:  # type: ignore[attr-defined]
        path = re.sub(r"<(\w+)>", r"{\1}", route.path)
        found.add(f"{route.method} {path}")
    return found


def contract_routes() -> set[str]:
    from slipway.api.http import resolver

    return powertools_paths(resolver(*all_routers()))


def test_every_route_of_a_function_is_one_its_code_serves(template: Template) -> None:
    functions = template.functions()
    served: dict[str, set[str]] = {}
    for route in template.routes():
        if route.path == "/{proxy+}":
            continue
        served.setdefault(route.function, set()).add(route.key)
    for name, keys in served.items():
        module = load_function(functions[name].code_dir)
        assert keys <= powertools_paths(module.app), (
            f"{name} lacks {keys - powertools_paths(module.app)}"
        )


def test_every_route_of_the_contract_is_deployed_once(template: Template) -> None:
    deployed = [r.key for r in template.routes() if r.path != "/{proxy+}"]
    assert len(deployed) == len(set(deployed)), "a route is deployed twice"
    assert set(deployed) == contract_routes()


def test_queues_schedules_and_environment_resolve(template: Template) -> None:
    sources = {s.function: s.queue for s in template.queue_sources()}
    assert sources == {
        "UploadCompleteFunction": "UploadEventsQueue",
        "TileFunction": "TileQueue",
        "ParseFunction": "ParseQueue",
    }
    assert {s.function for s in template.schedules()} == {"SweeperFunction", "ProjectFunction"}
    env = template.functions()["TileFunction"].environment
    assert env["SLIPWAY_TILE_QUEUE_URL"] == "http://127.0.0.1:4566/000000000000/slipway-tile-jobs"
    assert env["SLIPWAY_UPLOADS_BUCKET"] == "slipway-uploads-000000000000"
    assert env["DATABASE_URL"] == "postgresql://x"


def imported_by(function: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` importing functions/<function>/app.py loads, in a fresh process."""
    import json
    import subprocess
    import sys

    code = (
        f"import json, sys; sys.path.insert(0, 'functions/{function}'); import app; "
        f"print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_heavy_libraries_stay_out_of_the_light_functions() -> None:
    for name in ("presign", "upload_complete", "api", "linescan", "project", "sweeper"):
        assert imported_by(name, ("pyvips", "pyarrow")) == [], name


def test_the_events_function_imports_no_s3_client() -> None:
    """GET /v1/events needs no storage: its cold start skips boto3 (docs/benchmarks.md)."""
    assert imported_by("project", ("boto3", "botocore.client", "slipway.storage")) == []


# --- operations: alarms and the dashboard read what the code emits --------------------

NAMESPACE = {"Fn::Sub": "Slipway/${AWS::StackName}"}  # as written in template.yaml
FUNCTIONS_IN_EXPRESSIONS = {"FILL", "MAX", "SUM", "IF", "PERIOD"}


def job_types(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every job type a worker function runs (the queues config routes)."""
    from slipway import config

    monkeypatch.setenv("SLIPWAY_TILE_QUEUE_URL", "http://q/tile")
    monkeypatch.setenv("SLIPWAY_PARSE_QUEUE_URL", "http://q/parse")
    config.settings.cache_clear()
    try:
        return set(config.settings().job_queue_urls)
    finally:
        config.settings.cache_clear()


def dimension_values(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    from slipway.upload_rules import KINDS

    return {"JobType": job_types(monkeypatch), "Kind": set(KINDS), "Stream": {"events"}}


def check_custom_metric(
    name: str, dimensions: dict[str, Any], allowed: dict[str, set[str]], where: str
) -> None:
    """A metric of our namespace: one the code emits, under a dimension set it publishes,
    with dimension values the code can produce (Code is open: any error code)."""
    from slipway.metrics import CATALOGUE

    assert name in CATALOGUE, f"{where}: {name} is not emitted by slipway.metrics"
    sets = {frozenset(s) for s in CATALOGUE[name][1]}
    assert frozenset(dimensions) in sets, f"{where}: {name} is not published by {dimensions}"
    for key, value in dimensions.items():
        if key in allowed:
            assert value in allowed[key], f"{where}: {key}={value} is never emitted"


def resources_of(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == kind}


def alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, Any, str, dict[str, Any]]]:
    """(id, namespace, metric name, {dimension: value}) of every metric an alarm reads."""
    props = alarm["Properties"]
    if "MetricName" in props:
        dims = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
        return [("-", props["Namespace"], props["MetricName"], dims)]
    found = []
    for query in props["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            found.append((query["Id"], metric["Namespace"], metric["MetricName"], dims))
    return found


def test_every_alarm_reads_a_metric_the_code_or_aws_emits(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = template.doc
    env = doc["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert doc["Globals"]["Function"]["Tracing"] == "Active"
    allowed = dimension_values(monkeypatch)
    functions = set(resources_of(doc, "AWS::Serverless::Function"))
    queues = set(resources_of(doc, "AWS::SQS::Queue"))
    alarms = resources_of(doc, "AWS::CloudWatch::Alarm")
    assert alarms, "template.yaml has no alarms"
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        topic = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
        assert props["AlarmActions"] == [topic] and props["OKActions"] == [topic], name
        for _, namespace, metric, dims in alarm_metrics(alarm):
            if namespace == NAMESPACE:
                check_custom_metric(metric, dims, allowed, name)
            elif namespace == "AWS/Lambda":
                assert dims["FunctionName"]["Ref"] in functions, name
            elif namespace == "AWS/SQS":
                assert dims["QueueName"]["Fn::GetAtt"][0] in queues, name
            elif namespace == "AWS/ApiGateway":
                assert dims == {"ApiId": {"Ref": "HttpApi"}}, name
            else:
                pytest.fail(f"{name} reads {namespace}, which nothing here publishes")
        if "Metrics" in props:  # metric math: each id defined, one result
            ids = {q["Id"] for q in props["Metrics"]}
            assert [q.get("ReturnData", True) for q in props["Metrics"]].count(True) == 1, name
            for query in props["Metrics"]:
                used = set(re.findall(r"\b[A-Za-z]\w*\b", query.get("Expression", "")))
                assert used - FUNCTIONS_IN_EXPRESSIONS <= ids, (name, used - ids)


def test_the_alarms_cover_every_function_dead_letter_queue_and_job_type(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = template.doc
    alarms = resources_of(doc, "AWS::CloudWatch::Alarm")
    read = [m for alarm in alarms.values() for m in alarm_metrics(alarm)]
    functions = set(resources_of(doc, "AWS::Serverless::Function"))
    for metric in ("Errors", "Throttles"):
        watched = {
            d["FunctionName"]["Ref"] for _, ns, m, d in read if (ns, m) == ("AWS/Lambda", metric)
        }
        assert watched == functions, f"{metric} of {functions - watched} is not alarmed"
    dead_letters = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in resources_of(doc, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    }
    watched_queues = {d["QueueName"]["Fn::GetAtt"][0] for _, ns, _, d in read if ns == "AWS/SQS"}
    assert watched_queues == dead_letters
    types = job_types(monkeypatch)
    for metric in ("OldestQueuedJobAge", "JobsFailed", "JobsSucceeded"):
        seen = {d["JobType"] for _, ns, m, d in read if ns == NAMESPACE and m == metric}
        assert seen == types, f"{metric}: a job type is missing from the alarms"
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for name in alarms:
        assert f"`{name}`" in runbook, f"docs/operations.md does not explain {name}"


def dashboard_metrics(body: dict[str, Any]) -> list[list[Any]]:
    """The dashboard's metric arrays with CloudWatch's shorthand ("...", ".") expanded."""
    out: list[list[Any]] = []
    for widget in body["widgets"]:
        previous: list[Any] = []
        for entry in widget["properties"].get("metrics", []):
            items = [x for x in entry if not isinstance(x, dict)]
            if not items:  # an expression
                continue
            if items[0] == "...":
                items = previous[: len(previous) - len(items) + 1] + items[1:]
            items = [previous[i] if x == "." else x for i, x in enumerate(items)]
            out.append(items)
            previous = items
    return out


def test_the_dashboard_shows_every_metric_the_code_emits(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from slipway.metrics import CATALOGUE

    doc = template.doc
    (dashboard,) = resources_of(doc, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(dashboard["Properties"]["DashboardBody"]["Fn::Sub"])
    allowed = dimension_values(monkeypatch)
    shown = set()
    for namespace, name, *pairs in dashboard_metrics(body):
        dims = dict(zip(pairs[::2], pairs[1::2], strict=True))
        if namespace == NAMESPACE["Fn::Sub"]:
            check_custom_metric(name, dims, allowed, "OperationsDashboard")
            shown.add(name)
        elif namespace == "AWS/Lambda":
            assert dims["FunctionName"].strip("${}") in resources_of(
                doc, "AWS::Serverless::Function"
            )
    assert shown == set(CATALOGUE), f"not on the dashboard: {set(CATALOGUE) - shown}"
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    listed = {
        a.removeprefix("${").removesuffix(".Arn}") for a in alarm_widget["properties"]["alarms"]
    }
    assert listed == set(resources_of(doc, "AWS::CloudWatch::Alarm"))


def test_every_function_is_traced_logged_and_flushes_its_metrics() -> None:
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        text = app.read_text()
        name = app.parent.name
        assert f'tracer = tracing.setup("{name}")' in text, app
        assert "logs.entry(logger, tracer)" in text, f"{app}: handler not wrapped by logs.entry"
