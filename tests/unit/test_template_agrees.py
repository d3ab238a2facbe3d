"""template.yaml and the code describe the same system (nothing that could drift)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

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


def test_heavy_libraries_stay_out_of_the_light_functions() -> None:
    import subprocess
    import sys

    for name in ("presign", "upload_complete", "api", "linescan", "project", "sweeper"):
        code = (
            f"import sys; sys.path.insert(0, 'functions/{name}'); import app; "
            "print(sorted(m for m in ('pyvips', 'pyarrow') if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert out.stdout.strip().splitlines()[-1] == "[]", f"{name} imports {out.stdout}"
