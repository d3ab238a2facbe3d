"""The canonical `gnss_pvt` stream (docs/telemetry.md) and the header spellings we accept."""

from __future__ import annotations

import re

import pyarrow as pa

from slipway.telemetry import geoparquet

STREAM = "gnss_pvt"
SCHEMA = pa.schema(
    [
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("lat", pa.float64(), nullable=False),
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("alt", pa.float64()),
        pa.field("speed", pa.float64()),
    ]
)
# the Parquet file's columns: the readers' (SCHEMA), then the GeoParquet point of lon, lat
FILE_SCHEMA = SCHEMA.append(geoparquet.FIELD)

# canonical column → header spellings (after normalising: lower case, units dropped)
ALIASES: dict[str, tuple[str, ...]] = {
    "time": (
        "time",
        "timestamp",
        "utc",
        "datetime",
        "date_time",
        "time_utc",
        "timestamp_utc",
        "utc_time",
        "gps_time",
        "epoch",
        "unix_time",
    ),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "long", "longitude"),
    "alt": ("alt", "ele", "elevation", "altitude", "height"),
    "speed": ("speed", "spd", "velocity"),
}


def normalise(header: str) -> str:
    """'Latitude (deg)' → 'latitude'; 'Time UTC' → 'time_utc'."""
    text = re.sub(r"[\(\[].*?[\)\]]", "", header.strip().strip('"').lower())
    return re.sub(r"[\s\-]+", "_", text.strip()).strip("_")


def match_columns(headers: list[str]) -> dict[str, str]:
    """Canonical name → the file's header, for every canonical column found."""
    found: dict[str, str] = {}
    for canonical, spellings in ALIASES.items():
        for header in headers:
            if normalise(header) in spellings:
                found[canonical] = header
                break
    return found
