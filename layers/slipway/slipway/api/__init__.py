"""The HTTP API (API Gateway HTTP API, payload 2.0) as Powertools routers, one module per
resource. template.yaml decides which function serves which route; `resolver` builds the
app a function serves, and `all_routers` is the whole contract (OpenAPI, tests)."""
