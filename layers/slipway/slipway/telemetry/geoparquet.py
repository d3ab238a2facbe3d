"""GeoParquet 1.1 for the gnss_pvt stream: a `geometry` column of WKB points (lon, lat in
WGS 84: the spec's default CRS, OGC:CRS84, so no `crs` is written) and the file's `geo`
metadata with its bbox. Built with pyarrow alone: a point's WKB is a fixed 5-byte header
and the two little-endian doubles, joined column-wise without a Python loop.

parse.write_parquet appends the column to every row group (schema.FILE_SCHEMA), grows
the bbox row group by row group (`union`) and writes the `geo` key just before closing
the file, the one moment the bbox of all rows is known.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

GEOMETRY = "geometry"
FIELD = pa.field(GEOMETRY, pa.binary(), nullable=False)
VERSION = "1.1.0"
Bbox = tuple[float, float, float, float]  # lon min, lat min, lon max, lat max
_POINT_HEADER = b"\x01\x01\x00\x00\x00"  # little-endian, type 1 (Point, 2D)
_TYPE = re.compile(r"^(GeometryCollection|(Multi)?(Point|LineString|Polygon))( Z)?$")


def _little_endian(values: pa.Array) -> pa.Array:
    """A float64 column's values as 8-byte binaries (pyarrow buffers are little-endian)."""
    buffer = values.buffers()[1]
    raw = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(8), len(values), [None, buffer], offset=values.offset
    )
    return raw.cast(pa.binary())


def wkb_points(lon: pa.Array | pa.ChunkedArray, lat: pa.Array | pa.ChunkedArray) -> pa.Array:
    """WKB points from not-null longitude and latitude columns."""
    x = lon.combine_chunks() if isinstance(lon, pa.ChunkedArray) else lon
    y = lat.combine_chunks() if isinstance(lat, pa.ChunkedArray) else lat
    header = pa.scalar(_POINT_HEADER, pa.binary())
    return pc.binary_join_element_wise(
        header, _little_endian(x), _little_endian(y), pa.scalar(b"", pa.binary())
    )


def with_geometry(table: pa.Table) -> pa.Table:
    """The table with its points appended, chunk by chunk (no copy of lon and lat, and
    the intermediates stay the size of a batch)."""
    points = [wkb_points(b.column("lon"), b.column("lat")) for b in table.to_batches()]
    return table.append_column(FIELD, pa.chunked_array(points, pa.binary()))


def metadata(bbox: Bbox) -> dict[str, bytes]:
    """The file's `geo` key: bbox is (lon min, lat min, lon max, lat max)."""
    geo = {
        "version": VERSION,
        "primary_column": GEOMETRY,
        "columns": {
            GEOMETRY: {"encoding": "WKB", "geometry_types": ["Point"], "bbox": list(bbox)},
        },
    }
    return {"geo": json.dumps(geo).encode()}


def bbox_of(table: pa.Table) -> Bbox:
    lon, lat = pc.min_max(table.column("lon")), pc.min_max(table.column("lat"))
    return (lon["min"].as_py(), lat["min"].as_py(), lon["max"].as_py(), lat["max"].as_py())


def union(a: Bbox | None, b: Bbox) -> Bbox:
    """The bbox of both (`a` None: nothing yet)."""
    if a is None:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def problems(geo: Any) -> list[str]:
    """What the `geo` metadata lacks or gets wrong against the spec's JSON schema
    (format-specs/schema.json: its required fields, types and patterns); [] when valid."""
    if not isinstance(geo, dict):
        return ["geo is not an object"]
    found = [f"missing {k}" for k in ("version", "primary_column", "columns") if k not in geo]
    if found:
        return found
    if not isinstance(geo["version"], str) or not geo["version"].startswith("1."):
        found.append(f"version {geo['version']!r} is not a 1.x version")
    columns = geo["columns"]
    if not isinstance(columns, dict) or not columns:
        return [*found, "columns is not a non-empty object"]
    if geo["primary_column"] not in columns:
        found.append("primary_column is not one of columns")
    for name, column in columns.items():
        for key in ("encoding", "geometry_types"):
            if key not in column:
                found.append(f"{name}: missing {key}")
        if column.get("encoding") != "WKB":
            found.append(f"{name}: encoding is not WKB")
        types = column.get("geometry_types", [])
        if not isinstance(types, list) or len(set(types)) != len(types):
            found.append(f"{name}: geometry_types is not a list of unique items")
        elif not all(isinstance(t, str) and _TYPE.match(t) for t in types):
            found.append(f"{name}: geometry_types has an unknown type")
        bbox = column.get("bbox")
        if bbox is not None and (
            len(bbox) not in (4, 6) or not all(isinstance(v, int | float) for v in bbox)
        ):
            found.append(f"{name}: bbox is not 4 or 6 numbers")
    return found
