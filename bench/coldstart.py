"""Cold start: how long importing each function's handler module (functions/<name>/app.py)
takes in a fresh interpreter, against a bare `import boto3` (what the smallest useful
Python Lambda imports anyway). Median of RUNS fresh processes each, taken round-robin
after one discarded round that writes the bytecode caches; the interpreter's own start
is excluded (the same for both). The ratio is of CPU time, which a busy machine disturbs
far less than wall time (also printed). Goal: boto3 ÷ the slowest HTTP function ≥ 0.67.
Two bounds are timed the same way: the S3 and Postgres drivers alone (`drivers_ratio`)
and every third-party import an HTTP request needs (`floor_ratio`).

Usage: python bench/coldstart.py [runs]   (needs no stack: importing opens no connection)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `bench`, and never shadow the stdlib
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import statistics
import subprocess

from bench.common import ROOT, result

RUNS = 11
# The functions behind the HTTP API (template.yaml): a cold start there is a user waiting.
HTTP = ("presign", "upload_complete", "api", "linescan", "project")
# What every HTTP function's first request needs whatever the code's own imports: S3 and
# SQS (boto3), Postgres (psycopg, its pool), the bearer token (jwt) and Powertools'
# validating resolver (its OpenAPI params, pydantic). Printed as the floor the goal meets.
FLOOR = (
    "boto3, psycopg, psycopg_pool, jwt, aws_lambda_powertools.event_handler, "
    "aws_lambda_powertools.event_handler.openapi.params"
)
# The two drivers alone (S3 and Postgres): what any function that stores and records
# imports, before a token check, a router or a line of Slipway. Printed as the bound the
# goal meets with no other code at all.
DRIVERS = "boto3, psycopg, psycopg_pool"
TIMED = """
import sys, time
sys.path[0:0] = sys.argv[1:]  # the function's code directory, as in Lambda
wall, cpu = time.perf_counter(), time.process_time()
import {module}
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def import_once(module: str, code_dir: Path | None) -> tuple[float, float]:
    """(wall, CPU) seconds to import `module` in a fresh interpreter."""
    argv = [sys.executable, "-c", TIMED.format(module=module)]
    if code_dir is not None:
        argv.append(str(code_dir))
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        sys.exit(f"importing {module} from {code_dir} failed:\n{out.stderr[-1500:]}")
    wall, cpu = out.stdout.split()[-2:]
    return float(wall), float(cpu)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else RUNS
    sides: dict[str, tuple[str, Path | None]] = {
        "boto3": ("boto3", None),
        "drivers": (DRIVERS, None),
        "floor": (FLOOR, None),
    }
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        sides[app.parent.name] = ("app", app.parent)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for round_ in range(runs + 1):  # round-robin, so a busy moment hits every side alike
        for name, (module, code_dir) in sides.items():
            timing = import_once(module, code_dir)
            if round_:  # the first round writes the bytecode caches
                samples[name].append(timing)
    wall = {n: statistics.median(w for w, _ in s) for n, s in samples.items()}
    cpu = {n: statistics.median(c for _, c in s) for n, s in samples.items()}
    print(f"import boto3: {cpu['boto3'] * 1000:.0f} ms CPU, {wall['boto3'] * 1000:.0f} ms wall")
    print(
        f"drivers alone ({DRIVERS}): {cpu['drivers'] * 1000:.0f} ms CPU, "
        f"ratio {cpu['boto3'] / cpu['drivers']:.2f}"
    )
    print(
        f"floor (the third-party imports every HTTP request needs): {cpu['floor'] * 1000:.0f} ms"
        f" CPU, ratio {cpu['boto3'] / cpu['floor']:.2f}"
    )
    for name in sides:
        if name in ("boto3", "drivers", "floor"):
            continue
        kind = "HTTP" if name in HTTP else "worker"
        print(
            f"{name:<16} {kind:<6} {cpu[name] * 1000:4.0f} ms CPU ({wall[name] * 1000:4.0f} wall), "
            f"{cpu[name] / cpu['boto3']:.2f}× boto3, ratio {cpu['boto3'] / cpu[name]:.2f}"
        )
    slowest = max(HTTP, key=cpu.__getitem__)
    result(
        "coldstart",
        cpu["boto3"] / cpu[slowest],
        slowest=slowest,
        slowest_ms=cpu[slowest] * 1000,
        boto3_ms=cpu["boto3"] * 1000,
        wall_ratio=wall["boto3"] / wall[slowest],
        drivers_ratio=cpu["boto3"] / cpu["drivers"],
        floor_ratio=cpu["boto3"] / cpu["floor"],
        runs=runs,
    )


if __name__ == "__main__":
    main()
