"""Slipway: serverless ingestion of very large scientific files.

The whole domain, one module per concept (docs/architecture.md); the functions under
functions/ are thin adapters over it. Importable without AWS: storage and queues are
reached through boto3 at the endpoints the environment names.
"""
