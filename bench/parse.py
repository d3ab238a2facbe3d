"""The parse function's path — stream a telemetry CSV from S3, canonicalise, write Parquet
row groups, upload — vs pyarrow.csv.read_csv + pyarrow.parquet.write_table of the same
file from local disk. Ratio: Slipway's rows/s / pyarrow's (goal ≥ 0.8); also peak RSS
(goal: bounded, not growing with the file).

Usage: python bench/parse.py [million_rows]   (the stack must be up: make up)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `bench`, and never shadow the stdlib
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import os
import tempfile
import uuid

from bench.common import DATA, itself, measure, result, use_stack


def make_csv(rows: int) -> Path:
    """A 10 Hz GNSS log: ISO 8601 UTC times with milliseconds, lat, lon, alt, speed."""
    path = DATA / f"telemetry-{rows // 1_000_000}M.csv"
    if path.exists():
        return path
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    DATA.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [
            ("timestamp", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("alt", pa.float64()),
            ("speed", pa.float64()),
        ]
    )
    options = pacsv.WriteOptions(quoting_style="none")
    with pacsv.CSVWriter(str(path), schema, write_options=options) as writer:
        chunk = 1_000_000
        for start in range(0, rows, chunk):
            i = pa.array(range(start, min(start + chunk, rows)), pa.int64())
            millis = pc.cast(
                pc.add(pc.multiply(i, 100), 1_777_600_000_000), pa.timestamp("ms", tz="UTC")
            )
            angle = pc.multiply(pc.cast(i, pa.float64()), 2 * 3.141592653589793 / 6000)
            writer.write_batch(
                pa.record_batch(
                    [
                        pc.strftime(millis, format="%Y-%m-%dT%H:%M:%SZ"),
                        pc.round(pc.add(pc.multiply(pc.sin(angle), 0.01), 52.0), 7),
                        pc.round(pc.add(pc.multiply(pc.cos(angle), 0.015), 4.35), 7),
                        pc.round(pc.add(pc.sin(pc.multiply(angle, 3)), 1.5), 2),
                        pc.round(pc.add(pc.cos(pc.multiply(angle, 2)), 8.0), 3),
                    ],
                    schema=schema,
                )
            )
    return path


def slipway_side(key: str) -> None:
    """What the parse job does with an upload's object (parse.convert)."""
    env = use_stack()
    from slipway.telemetry import parse

    written = parse.convert(env["SLIPWAY_DATA_BUCKET"], key, f"bench/{uuid.uuid4()}.parquet")
    print(written.rows)


def pyarrow_side(path: str) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(path)
    fd, out = tempfile.mkstemp(suffix=".parquet", dir=DATA)
    os.close(fd)
    try:
        pq.write_table(table, out, compression="zstd")
    finally:
        os.unlink(out)
    print(table.num_rows)


def main() -> None:
    rows = int(float(sys.argv[1]) * 1_000_000) if len(sys.argv) > 1 else 10_000_000
    env = use_stack()
    path = make_csv(rows)
    key = f"bench/{path.name}"
    from slipway import storage

    stored = storage.head(env["SLIPWAY_DATA_BUCKET"], key)
    if stored is None or stored.size != path.stat().st_size:
        storage.upload_file(str(path), env["SLIPWAY_DATA_BUCKET"], key, "text/csv")
    reference = measure(itself("--pyarrow", str(path)))
    ours = measure(itself("--slipway", key))
    assert int(ours.output.split()[-1]) == int(reference.output.split()[-1]) == rows
    mb = path.stat().st_size / 1e6
    for label, m in (
        ("pyarrow read_csv + write_table (local file)", reference),
        ("slipway parse (S3 → Parquet → S3)         ", ours),
    ):
        print(
            f"{label}: {rows / m.seconds / 1e6:.2f} M rows/s ({mb / m.seconds:.0f} MB/s), "
            f"peak RSS {m.peak_rss_mib:.0f} MiB"
        )
    result(
        "parse",
        reference.seconds / ours.seconds,
        slipway_rows_s=rows / ours.seconds,
        pyarrow_rows_s=rows / reference.seconds,
        slipway_rss_mib=ours.peak_rss_mib,
        pyarrow_rss_mib=reference.peak_rss_mib,
        rows=rows,
        csv_mb=mb,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--slipway"]:
        slipway_side(sys.argv[2])
    elif sys.argv[1:2] == ["--pyarrow"]:
        pyarrow_side(sys.argv[2])
    else:
        main()
