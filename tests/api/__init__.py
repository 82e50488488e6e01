"""The HTTP API: the service, its client, its OpenAPI description."""
