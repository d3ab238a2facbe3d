"""infra/package_imports.py, the import check `make package` runs on the SAM build: a
function imports only from its code, its layers and what Lambda provides."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from infra.package_imports import check, top_level_packages
from infra.package_size import PackageError

# This interpreter's version: the check insists on the runtime's.
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"


def build_with(tmp_path: Path, app: str, runtime: str = RUNTIME) -> Path:
    (tmp_path / "template.yaml").write_text(
        f"""
Globals:
  Function: {{Runtime: {runtime}, Layers: [{{Ref: CoreLayer}}]}}
Resources:
  CoreLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {{ContentUri: CoreLayer}}
  OneFunction:
    Type: AWS::Serverless::Function
    Properties: {{CodeUri: OneFunction}}
"""
    )
    core = tmp_path / "CoreLayer" / "python" / "core"
    core.mkdir(parents=True)
    (core / "__init__.py").write_text("VALUE = 1\n")
    (tmp_path / "CoreLayer" / "python" / "core-1.0.dist-info").mkdir()
    (tmp_path / "OneFunction").mkdir()
    (tmp_path / "OneFunction" / "app.py").write_text(app)
    return tmp_path


def test_a_function_that_imports_its_layer_and_boto3_passes(tmp_path: Path) -> None:
    build = build_with(tmp_path, "import boto3\nimport core\n\ndef handler(event, context): ...\n")
    assert check(build, sys.executable) == ["OneFunction"]
    assert not list(build.rglob("__pycache__"))  # nothing written into the build


def test_a_module_only_the_local_venv_has_fails(tmp_path: Path) -> None:
    import yaml  # noqa: F401 (installed here, as in .venv: the function must not see it)

    build = build_with(tmp_path, "import yaml\n\ndef handler(event, context): ...\n")
    missing = "OneFunction: ModuleNotFoundError: No module named 'yaml'"
    with pytest.raises(PackageError, match=missing):
        check(build, sys.executable)


def test_a_layer_package_that_does_not_import_fails(tmp_path: Path) -> None:
    build = build_with(tmp_path, "def handler(event, context): ...\n")
    (build / "CoreLayer" / "python" / "core" / "__init__.py").write_text("import _missing_ext\n")
    with pytest.raises(PackageError, match="No module named '_missing_ext'"):
        check(build, sys.executable)


def test_a_function_without_a_handler_fails(tmp_path: Path) -> None:
    build = build_with(tmp_path, "import core\n")
    with pytest.raises(PackageError, match=r"app\.handler is not callable"):
        check(build, sys.executable)


def test_an_interpreter_of_another_version_is_refused(tmp_path: Path) -> None:
    build = build_with(tmp_path, "def handler(event, context): ...\n", runtime="python3.99")
    with pytest.raises(PackageError, match=r"runs on python3\.99"):
        check(build, sys.executable)


def test_top_level_packages_are_the_importable_names_only(tmp_path: Path) -> None:
    for name in ("pkg", "pkg-1.0.dist-info", "pkg.libs", "jmespath-1.1.0.data", "data_only"):
        (tmp_path / name).mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "single.py").write_text("")
    (tmp_path / "requirements.txt").write_text("")
    assert top_level_packages(tmp_path) == ["pkg", "single"]
