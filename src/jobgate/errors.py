"""The one exception tree of jobgate.

Every error the service raises derives from :class:`JobgateError`. Each carries a
stable ``code`` (used by the API as the ``error`` field), a human ``message`` that
says what to fix, optional structured ``details`` and a ``transient`` flag that
tells callers whether retrying may help. HTTP status codes live only in
``api/errors.py``.
"""

from __future__ import annotations

from typing import Any


class JobgateError(Exception):
    """Root of every jobgate error."""

    code = "error"
    transient = False

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidSpecError(JobgateError):
    """A job request carries a bad value; names the field and the value."""

    code = "invalid"

    def __init__(self, field: str, value: Any, reason: str) -> None:
        super().__init__(f"{field}: {reason} (got {value!r})", details=[
            {"field": field, "value": _jsonable(value), "reason": reason}
        ])
        self.field = field
        self.value = value
        self.reason = reason


class UnsupportedError(JobgateError):
    """The chosen cluster cannot do what the request asks (yet)."""

    code = "not_supported"


class VerbNotSupportedError(JobgateError):
    """The job's cluster cannot carry out this verb at all."""

    code = "not_implemented"


class NotFoundError(JobgateError):
    """The named object does not exist (or is not visible to the caller)."""

    code = "not_found"


class ConflictError(JobgateError):
    """The operation does not apply to the object in its current state."""

    code = "conflict"


class AuthenticationError(JobgateError):
    """No credentials, or credentials that match no user."""

    code = "unauthorized"


class PermissionDeniedError(JobgateError):
    """The caller is known but may not do this."""

    code = "forbidden"


class RateLimitedError(JobgateError):
    """Too many requests from one user; `retry_after` is in seconds."""

    code = "rate_limited"
    transient = True

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class TooLargeError(JobgateError):
    """A request passes a configured size or count limit; names the limit."""

    code = "too_large"

    def __init__(self, limit: str, maximum: int, what: str) -> None:
        super().__init__(f"{what} passes {limit} ({maximum})",
                         details={"limit": limit, "max": maximum})
        self.limit = limit
        self.maximum = maximum


class ServerError(JobgateError):
    """The gateway (or something behind it) failed; trying again later may work."""

    code = "internal"
    transient = True


class BackendError(ServerError):
    """A cluster backend failed to carry out an operation."""

    code = "backend_error"
    transient = True


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
