"""GeoParquet 1.1 for gnss_pvt: parse writes WKB points and the `geo` metadata with the
bbox of all rows (over row groups, through the out-of-order sort), checked against the
spec's schema (its required fields and patterns) and read back by DuckDB."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slipway.telemetry import geoparquet, parse, schema
from tests.fixtures.telemetry import devices


def geo_of(path: Path) -> Any:
    """The `geo` key as pyarrow's schema has it (geopandas reads it there) and as the
    file's key-value metadata has it (DuckDB, GDAL): the same."""
    key_values = pq.ParquetFile(path).metadata.metadata
    schema_meta = pq.read_schema(path).metadata
    assert schema_meta is not None and schema_meta[b"geo"] == key_values[b"geo"]
    return json.loads(key_values[b"geo"])


def bbox(pts: list[devices.Point]) -> list[float]:
    lons, lats = [p[2] for p in pts], [p[1] for p in pts]
    return [min(lons), min(lats), max(lons), max(lats)]


def test_parse_writes_valid_geoparquet_that_duckdb_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parse, "ROW_GROUP_ROWS", 7)  # the bbox spans the row groups
    pts = devices.points(50)
    out = tmp_path / "g.parquet"
    (batch,) = parse.batches(io.BytesIO(devices.tcx(pts)))
    slices = (batch.slice(i, 7) for i in range(0, 50, 7))  # slices: the offsets count
    parse.write_parquet(slices, str(out))

    assert pq.ParquetFile(out).metadata.num_row_groups == 8
    assert pq.read_schema(out).remove_metadata().equals(schema.FILE_SCHEMA)
    assert schema.FILE_SCHEMA.names == [*schema.SCHEMA.names, "geometry"]
    meta = geo_of(out)
    assert geoparquet.problems(meta) == []
    assert meta["columns"]["geometry"]["bbox"] == bbox(pts)
    read = pq.read_table(out)
    for wkb, (_, lat, lon, _, _) in zip(read.column("geometry").to_pylist(), pts, strict=True):
        assert struct.unpack("<BIdd", wkb) == (1, 1, lon, lat)
    # DuckDB reads the column as GEOMETRY in OGC:CRS84 from our `geo` metadata alone
    db = duckdb.connect()
    kind = db.execute(f"SELECT typeof(geometry) FROM read_parquet('{out}') LIMIT 1").fetchone()
    assert kind == ("GEOMETRY('OGC:CRS84')",)
    west, south, east, north = meta["columns"]["geometry"]["bbox"]
    texts = db.execute(
        f"SELECT ST_AsText(geometry), lon, lat FROM read_parquet('{out}') "
        f"WHERE lon BETWEEN {west} AND {east} AND lat BETWEEN {south} AND {north}"
    ).fetchall()
    assert len(texts) == len(pts)
    assert all(text == f"POINT ({lon!r} {lat!r})" for text, lon, lat in texts), texts[:3]


def test_out_of_order_input_is_sorted_with_its_points_and_geo_kept(tmp_path: Path) -> None:
    pts = devices.points(40)
    lines = [f"{p[0].timestamp()},{p[1]},{p[2]}" for p in pts]
    data = "\n".join(["time,lat,lon", *lines[20:], *lines[:20]]).encode()  # two halves swapped
    out = tmp_path / "g.parquet"
    written = parse.write_parquet(parse.batches(io.BytesIO(data)), str(out))

    assert (written.rows, written.start) == (40, pts[0][0])
    meta = geo_of(out)
    assert geoparquet.problems(meta) == [] and meta["columns"]["geometry"]["bbox"] == bbox(pts)
    read = pq.read_table(out)
    assert read.column("time").to_pylist() == [p[0] for p in pts]
    points = [struct.unpack("<BIdd", w) for w in read.column("geometry").to_pylist()]
    assert points == [(1, 1, p[2], p[1]) for p in pts]


def test_wkb_of_a_slice_counts_the_column_offsets() -> None:
    lon, lat = pa.array([1.0, 2.0, 3.0, 4.0]), pa.array([-1.0, -2.0, -3.0, -4.0])
    points = geoparquet.wkb_points(lon.slice(1, 2), lat.slice(2, 2)).to_pylist()
    assert [struct.unpack("<BIdd", p) for p in points] == [(1, 1, 2.0, -3.0), (1, 1, 3.0, -4.0)]


def test_the_bbox_grows_by_union() -> None:
    assert geoparquet.union(None, (1, 2, 3, 4)) == (1, 2, 3, 4)
    assert geoparquet.union((1, 2, 3, 4), (0, 3, 2, 5)) == (0, 2, 3, 5)


def test_the_metadata_check_names_what_is_missing_or_wrong() -> None:
    assert geoparquet.problems({"version": "1.1.0"}) == [
        "missing primary_column",
        "missing columns",
    ]
    bad = {
        "version": "2",
        "primary_column": "geom",
        "columns": {"geometry": {"encoding": "WKT", "geometry_types": ["Pt"], "bbox": [1, 2]}},
    }
    assert geoparquet.problems(bad) == [
        "version '2' is not a 1.x version",
        "primary_column is not one of columns",
        "geometry: encoding is not WKB",
        "geometry: geometry_types has an unknown type",
        "geometry: bbox is not 4 or 6 numbers",
    ]
    assert geoparquet.problems(json.loads(geoparquet.metadata((1, 2, 3, 4))["geo"])) == []


def test_wkb_of_chunked_columns() -> None:
    lon = pa.chunked_array([[4.0], [5.5]])
    lat = pa.chunked_array([[52.0], [53.25]])
    points = geoparquet.wkb_points(lon, lat).to_pylist()
    assert [struct.unpack("<BIdd", p) for p in points] == [(1, 1, 4.0, 52.0), (1, 1, 5.5, 53.25)]
