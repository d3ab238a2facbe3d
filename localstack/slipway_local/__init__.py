"""Slipway's local stack (see localstack/README.md)."""
