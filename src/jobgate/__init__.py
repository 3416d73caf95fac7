"""jobgate: a job gateway for compute clusters.

The public SDK: `Client`, `Job`, `JobSpec`, `JobState` and the error types.
"""

from __future__ import annotations

from jobgate.client import Client, Job, UnreachableError, WaitTimeout
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import (
    AuthenticationError,
    BackendError,
    ConflictError,
    InvalidSpecError,
    JobgateError,
    NotFoundError,
    PermissionDeniedError,
    TooLargeError,
    UnsupportedError,
)

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BackendError",
    "Client",
    "ConflictError",
    "InvalidSpecError",
    "Job",
    "JobSpec",
    "JobState",
    "JobgateError",
    "NotFoundError",
    "PermissionDeniedError",
    "TooLargeError",
    "UnreachableError",
    "UnsupportedError",
    "WaitTimeout",
    "__version__",
]
