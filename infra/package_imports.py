"""Imports each function of the SAM build as Lambda would: its code and its layers only.

For every function in `.aws-sam/build`, a fresh CPython of the runtime's version (`-I -S
-B`: no site-packages, no environment, no bytecode written into the build) with the
function's code, its layers' `python/` and what the Lambda runtime itself provides (boto3
and its dependencies) on sys.path imports `app`, checks `app.handler`, and imports every
top-level package its layers install. A module that works locally only because `.venv`
has it fails here. `make package` runs it after infra/package_size.py, from the SAM
virtualenv (`python -m infra.package_imports`; that venv also supplies the boto3 copy).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.package_size import BUILD, PackageError, functions

# What the python3.12 runtime has besides the standard library (not to be packaged).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "DATABASE_URL": "postgresql://package-check.invalid/slipway",
    "SLIPWAY_JWT_SECRET": secrets.token_urlsafe(32),  # the functions refuse a weak one
}
PROBE = """
import importlib, os, sys
sys.path[:0] = sys.argv[1].split(os.pathsep)
import app
assert callable(getattr(app, "handler", None)), "app.handler is not callable"
for name in sys.argv[2].split():
    importlib.import_module(name)
"""


def top_level_packages(layer_python: Path) -> list[str]:
    """Importable top-level names a layer installs (packages and single modules)."""
    names = []
    for entry in sorted(layer_python.iterdir()):
        stem = entry.name.removesuffix(".py")
        if entry.name.endswith((".dist-info", ".libs", ".data")) or not stem.isidentifier():
            continue
        if entry.is_dir() and not (entry / "__init__.py").exists():
            continue  # data only (e.g. *.libs), not a package
        if entry.is_dir() or entry.suffix == ".py":
            names.append(stem)
    return names


def runtime_modules(into: Path) -> Path:
    """A directory with links to this interpreter's copies of what Lambda provides."""
    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise PackageError(f"{name} (provided by Lambda) is missing from {sys.executable}")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (into / source.name).symlink_to(source)
    return into


def check(build: Path = BUILD, python: str = sys.executable) -> list[str]:
    """Each function's name once its imports succeed; PackageError listing the failures.

    `python` must be the functions' runtime version (the SAM virtualenv's is).
    """
    version = subprocess.run(
        [python, "-c", "import sys; print('python%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    failures, passed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        provided = runtime_modules(Path(tmp))
        for fn in functions(build):
            if version != fn.runtime:
                raise PackageError(f"{fn.name} runs on {fn.runtime}, {python} is {version}")
            layer_paths = [d / "python" for d in fn.layer_dirs.values()]
            packages = [name for p in layer_paths for name in top_level_packages(p)]
            path = os.pathsep.join(str(p) for p in [fn.code_dir, *layer_paths, provided])
            result = subprocess.run(
                [python, "-I", "-S", "-B", "-c", PROBE, path, " ".join(packages)],
                env=ENV,
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if result.returncode:
                last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
                failures.append(f"{fn.name}: {last}")
            else:
                passed.append(fn.name)
    if failures:
        raise PackageError("\n".join(failures))
    return passed


def main(argv: list[str]) -> int:
    build = Path(argv[1]) if len(argv) > 1 else BUILD
    try:
        passed = check(build)
    except PackageError as error:
        print(f"package import check failed:\n{error}", file=sys.stderr)
        return 1
    print(f"imports as on Lambda: {', '.join(passed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
