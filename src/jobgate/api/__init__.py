"""The HTTP API: schemas, auth and routes; no business logic."""
