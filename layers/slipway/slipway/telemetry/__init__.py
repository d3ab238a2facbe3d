"""Telemetry: sessions (light, used by the API) and parsing to Parquet (`parse`, heavy)."""
