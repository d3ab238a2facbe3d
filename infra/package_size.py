"""Checks the SAM build (`.aws-sam/build`) against what Lambda will accept.

- Each function's code plus all its layers, unzipped, within Lambda's 250 MB
  (262,144,000 bytes); the margin of each is printed.
- Every installed wheel runs on the function's runtime: CPython 3.12 on Amazon Linux
  2023 (glibc 2.34), manylinux for the template's architecture.

`make package` runs it after `sam build` (`python -m infra.package_size`, docs/deploy.md);
it needs only PyYAML and packaging, so it runs from the SAM virtualenv. Exit 1 on any
failure, with the reason.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.tags import Tag, compatible_tags, cpython_tags, parse_tag

LIMIT = 262_144_000  # bytes: Lambda's "250 MB" for code and layers, unzipped
MiB = 1024 * 1024
BUILD = Path(__file__).resolve().parents[1] / ".aws-sam" / "build"
# The runtimes this project may choose, and the glibc of the OS each runs on.
GLIBC = {"python3.12": (2, 34), "python3.13": (2, 34)}
MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}


class PackageError(Exception):
    """The build is missing, unreadable, or Lambda would refuse it."""


@dataclass(frozen=True)
class Sized:
    function: str
    code: int  # bytes
    layers: dict[str, int]  # layer -> bytes

    @property
    def total(self) -> int:
        return self.code + sum(self.layers.values())

    @property
    def margin(self) -> int:
        return LIMIT - self.total


class _Loader(yaml.SafeLoader):
    """The built template is plain YAML, but keep any short CloudFormation tag readable."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: {suffix: node.value})


def tree_size(path: Path) -> int:
    """Bytes of the regular files under path, as Lambda counts them (unzipped)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def supported_tags(runtime: str, architecture: str) -> set[Tag]:
    """Wheel tags CPython `runtime` accepts on its Amazon Linux (manylinux up to its glibc)."""
    if runtime not in GLIBC:
        raise PackageError(f"runtime {runtime} is not one this check knows: {sorted(GLIBC)}")
    major, minor = (int(n) for n in runtime.removeprefix("python").split("."))
    glibc_major, glibc_minor = GLIBC[runtime]
    machine = MACHINE[architecture]
    platforms = [f"manylinux_{glibc_major}_{m}_{machine}" for m in range(glibc_minor, 4, -1)]
    platforms += [f"manylinux{legacy}_{machine}" for legacy in ("2014", "2010", "1")]
    version = (major, minor)
    return set(cpython_tags(version, platforms=platforms)) | set(
        compatible_tags(version, f"cp{major}{minor}", platforms)
    )


def foreign_wheels(tree: Path, accepted: set[Tag]) -> list[str]:
    """'dist (tags)' for every installed wheel under tree none of whose tags is accepted."""
    bad = []
    for wheel in sorted(tree.rglob("*.dist-info/WHEEL")):
        tags: set[Tag] = set()
        for line in wheel.read_text().splitlines():
            if line.startswith("Tag:"):
                tags |= parse_tag(line.removeprefix("Tag:").strip())
        if not tags & accepted:
            bad.append(f"{wheel.parent.name} ({', '.join(sorted(map(str, tags)))})")
    return bad


@dataclass(frozen=True)
class Function:
    name: str
    code_dir: Path
    layer_dirs: dict[str, Path]  # layer -> its build directory
    runtime: str
    architecture: str


def functions(build: Path = BUILD) -> list[Function]:
    """The functions of the built template, each with its built code and layers."""
    template_path = build / "template.yaml"
    if not template_path.is_file():
        raise PackageError(f"no SAM build at {build}: run `make package` first")
    template: dict[str, Any] = yaml.load(template_path.read_text(), Loader=_Loader)  # noqa: S506
    defaults: dict[str, Any] = (template.get("Globals") or {}).get("Function") or {}
    resources: dict[str, Any] = template["Resources"]
    found = []
    for name, resource in sorted(resources.items()):
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        own: dict[str, Any] = resource["Properties"]
        props = {**defaults, **own}
        layer_dirs: dict[str, Path] = {}
        # SAM appends a function's own Layers to the global ones.
        for ref in [*defaults.get("Layers", []), *own.get("Layers", [])]:
            if not (isinstance(ref, dict) and ref.get("Ref") in resources):
                raise PackageError(f"{name}: layer {ref!r} is not built here, cannot check it")
            layer_dirs[ref["Ref"]] = build / resources[ref["Ref"]]["Properties"]["ContentUri"]
        code_dir = build / props["CodeUri"]
        for tree in [code_dir, *layer_dirs.values()]:
            if not tree.is_dir():
                raise PackageError(f"{name}: {tree} is missing: run `make package` again")
        architecture = (props.get("Architectures") or ["x86_64"])[0]
        found.append(Function(name, code_dir, layer_dirs, props["Runtime"], architecture))
    if not found:
        raise PackageError(f"{template_path} has no functions")
    return found


def check(build: Path = BUILD) -> list[Sized]:
    """The size of every function in the build; raises PackageError if Lambda would refuse one."""
    problems: list[str] = []
    sized: list[Sized] = []
    for fn in functions(build):
        entry = Sized(
            fn.name, tree_size(fn.code_dir), {k: tree_size(v) for k, v in fn.layer_dirs.items()}
        )
        sized.append(entry)
        if entry.margin < 0:
            problems.append(
                f"{fn.name}: code + layers are {entry.total / MiB:.1f} MiB unzipped, "
                f"{-entry.margin / MiB:.1f} MiB over Lambda's {LIMIT / MiB:.0f} MiB"
            )
        accepted = supported_tags(fn.runtime, fn.architecture)
        for tree in [fn.code_dir, *fn.layer_dirs.values()]:
            problems += [
                f"{fn.name}: {wheel} does not run on {fn.runtime} {fn.architecture}"
                for wheel in foreign_wheels(tree, accepted)
            ]
    if problems:
        raise PackageError("\n".join(sorted(set(problems))))
    return sized


def report(sized: list[Sized]) -> str:
    lines = [f"{'function':<24} {'code':>9} {'layers':>10} {'total':>10} {'margin':>17}  layers"]
    for s in sized:
        lines.append(
            f"{s.function:<24} {s.code / 1024:7.1f}Ki {sum(s.layers.values()) / MiB:8.1f}Mi "
            f"{s.total / MiB:8.1f}Mi {s.margin / MiB:8.1f}Mi ({s.margin / LIMIT:4.0%})  "
            + " + ".join(s.layers)
        )
    lines.append(f"limit: {LIMIT / MiB:.0f} MiB ({LIMIT:,} bytes) per function, unzipped")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    build = Path(argv[1]) if len(argv) > 1 else BUILD
    try:
        sized = check(build)
    except PackageError as error:
        print(f"package check failed:\n{error}", file=sys.stderr)
        return 1
    print(report(sized))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
