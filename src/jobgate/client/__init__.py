"""The Python SDK: `Client` talks to a gateway, `Job` is one job, `Jobs` many.

Imports only httpx, pydantic and jobgate's public domain types, never the server.
"""

from __future__ import annotations

from jobgate.client.aio import AsyncClient
from jobgate.client.client import Client
from jobgate.client.errors import (
    MissingJobError,
    NotSupportedError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    UnreachableError,
    WaitTimeout,
)
from jobgate.client.job import Job
from jobgate.client.jobs import Jobs, as_completed

__all__ = [
    "AsyncClient",
    "Client",
    "Job",
    "Jobs",
    "MissingJobError",
    "NotSupportedError",
    "RateLimitedError",
    "ServerError",
    "UnauthorizedError",
    "UnreachableError",
    "WaitTimeout",
    "as_completed",
]
