"""jobgate: a job gateway for compute clusters.

The public SDK: `Client` (and `AsyncClient`), `Job` and `Jobs` (named as pyslurm's),
`as_completed`, `JobSpec`, `JobState` and the error types.
"""

from __future__ import annotations

from jobgate.client import (
    AsyncClient,
    Client,
    Job,
    Jobs,
    MissingJobError,
    NotSupportedError,
    UnauthorizedError,
    UnreachableError,
    WaitTimeout,
    as_completed,
)
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
    RateLimitedError,
    ServerError,
    TooLargeError,
    UnsupportedError,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "BackendError",
    "Client",
    "ConflictError",
    "InvalidSpecError",
    "Job",
    "JobSpec",
    "JobState",
    "JobgateError",
    "Jobs",
    "MissingJobError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ServerError",
    "TooLargeError",
    "UnauthorizedError",
    "UnreachableError",
    "UnsupportedError",
    "WaitTimeout",
    "__version__",
    "as_completed",
]
