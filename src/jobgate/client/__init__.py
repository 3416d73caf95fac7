"""The Python SDK: `Client` talks to a gateway, `Job` is one job it returned.

Imports only httpx, pydantic and jobgate's public domain types, never the server.
"""

from __future__ import annotations

from jobgate.client.client import Client
from jobgate.client.errors import UnreachableError, WaitTimeout
from jobgate.client.job import Job

__all__ = ["Client", "Job", "UnreachableError", "WaitTimeout"]
