"""infra/package_size.py, the check `make package` runs on the SAM build, against small
builds made here; and the template's one runtime, which the check's wheel rule assumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra import package_size
from infra.package_size import LIMIT, PackageError, check, foreign_wheels, supported_tags
from slipway_local.template import load
from tests.support import ROOT

BUILT_TEMPLATE = """
Globals:
  Function:
    Runtime: python3.12
    Architectures: [x86_64]
    Layers: [{Ref: CoreLayer}]
Resources:
  CoreLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: CoreLayer}
  BigLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: BigLayer}
  SmallFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: SmallFunction}
  BigFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: BigFunction, Layers: [{Ref: BigLayer}]}
  Queue:
    Type: AWS::SQS::Queue
"""


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size)  # sparse: the size is what counts


def wheel(tree: Path, dist: str, *tags: str) -> None:
    info = tree / "python" / f"{dist}.dist-info" / "WHEEL"
    info.parent.mkdir(parents=True, exist_ok=True)
    info.write_text("Wheel-Version: 1.0\n" + "".join(f"Tag: {tag}\n" for tag in tags))


@pytest.fixture
def build(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(BUILT_TEMPLATE)
    write(tmp_path / "SmallFunction" / "app.py", 1_000)
    write(tmp_path / "BigFunction" / "app.py", 2_000)
    write(tmp_path / "CoreLayer" / "python" / "core.py", 30_000_000)
    write(tmp_path / "BigLayer" / "python" / "big.so", 200_000_000)
    wheel(tmp_path / "CoreLayer", "cbor2-6.3.0", "cp312-cp312-manylinux_2_28_x86_64")
    wheel(tmp_path / "BigLayer", "pyarrow-26.0.1", "cp312-cp312-manylinux_2_28_x86_64")
    return tmp_path


def test_each_function_counts_its_code_the_global_layers_and_its_own(build: Path) -> None:
    sized = {s.function: s for s in check(build)}
    assert set(sized) == {"SmallFunction", "BigFunction"}
    small, big = sized["SmallFunction"], sized["BigFunction"]
    assert small.layers.keys() == {"CoreLayer"}
    assert big.layers.keys() == {"CoreLayer", "BigLayer"}
    wheel_file = len("Wheel-Version: 1.0\nTag: cp312-cp312-manylinux_2_28_x86_64\n")
    core, big_layer = 30_000_000 + wheel_file, 200_000_000 + wheel_file
    assert small.layers == {"CoreLayer": core}
    assert (small.code, small.total) == (1_000, 1_000 + core)
    assert big.total == 2_000 + core + big_layer
    assert big.margin == LIMIT - big.total


def test_the_report_prints_every_function_with_its_margin(
    build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert package_size.main(["package_size", str(build)]) == 0
    out = capsys.readouterr().out
    big = next(s for s in check(build) if s.function == "BigFunction")
    line = next(line for line in out.splitlines() if line.startswith("BigFunction"))
    assert f"{big.margin / package_size.MiB:.1f}Mi" in line
    assert "CoreLayer + BigLayer" in line
    assert "SmallFunction" in out


def test_a_function_over_250_mb_with_its_layers_fails(build: Path) -> None:
    write(build / "BigLayer" / "python" / "big.so", LIMIT - 30_000_000)
    with pytest.raises(PackageError, match=r"BigFunction: code \+ layers are .* MiB over"):
        check(build)


def test_a_missing_build_says_to_run_make_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert package_size.main(["package_size", str(tmp_path / "nothing")]) == 1
    assert "run `make package`" in capsys.readouterr().err


def test_a_missing_layer_directory_fails(build: Path) -> None:
    shutil.rmtree(build / "BigLayer")
    with pytest.raises(PackageError, match="BigLayer is missing"):
        check(build)


def test_a_wheel_that_needs_a_newer_glibc_fails(build: Path) -> None:
    wheel(build / "BigLayer", "newer-1.0", "cp312-cp312-manylinux_2_35_x86_64")
    with pytest.raises(PackageError, match=r"newer-1.0.dist-info .* does not run on python3.12"):
        check(build)


@pytest.mark.parametrize(
    ("tags", "runs"),
    [
        (["py3-none-any"], True),
        (["py2-none-any", "py3-none-any"], True),
        (["cp312-cp312-manylinux_2_34_x86_64"], True),
        (["cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-manylinux2014_x86_64"], True),
        (["cp37-abi3-manylinux_2_28_x86_64"], True),  # pyvips-binary
        (["cp312-cp312-manylinux_2_35_x86_64"], False),  # glibc newer than AL2023's
        (["cp311-cp311-manylinux_2_17_x86_64"], False),  # another CPython
        (["cp312-cp312-manylinux_2_28_aarch64"], False),  # another architecture
        (["cp312-cp312-musllinux_1_2_x86_64"], False),
        (["cp312-cp312-linux_x86_64"], False),  # built here, not manylinux
    ],
)
def test_wheel_tags_the_runtime_accepts(tmp_path: Path, tags: list[str], runs: bool) -> None:
    wheel(tmp_path, "dist-1.0", *tags)
    assert (foreign_wheels(tmp_path, supported_tags("python3.12", "x86_64")) == []) is runs


def test_an_unknown_runtime_is_refused_rather_than_guessed() -> None:
    with pytest.raises(PackageError, match=r"python3\.11 is not one this check knows"):
        supported_tags("python3.11", "x86_64")


def test_the_template_chooses_one_runtime_for_every_function_and_layer() -> None:
    template = load(ROOT / "template.yaml")
    runtime = template["Globals"]["Function"]["Runtime"]
    assert runtime == "python3.12"  # Amazon Linux 2023, docs/deploy.md
    assert runtime in package_size.GLIBC
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            assert props.get("Runtime", runtime) == runtime, name
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            assert props["CompatibleRuntimes"] == [runtime], name
            assert resource["Metadata"]["BuildMethod"] == runtime, name


def test_short_cloudformation_tags_in_the_built_template_are_read(build: Path) -> None:
    # sam build writes long-form intrinsics ({Ref: X}); a short !Ref must read the same.
    template = build / "template.yaml"
    template.write_text(template.read_text().replace("[{Ref: BigLayer}]", "[!Ref BigLayer]"))
    big = next(s for s in check(build) if s.function == "BigFunction")
    assert big.layers.keys() == {"CoreLayer", "BigLayer"}
