"""The server's error answers, turned back into jobgate's exceptions.

The API answers every error as ``{"error": code, "message": text, "details": ...}``;
the ``code`` names the exception class, the HTTP status is only the fallback.
The client adds two errors of its own: the gateway cannot be reached, and a
wait ran out of time. Both also derive from the matching built-in exception, so
``except ConnectionError`` and ``except TimeoutError`` catch them too.
"""

from __future__ import annotations

from typing import Any

import httpx

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
    VerbNotSupportedError,
)

__all__ = [
    "MissingJobError",
    "NotSupportedError",
    "RateLimitedError",
    "ServerError",
    "UnauthorizedError",
    "UnreachableError",
    "WaitTimeout",
    "error_from_response",
]

# The SDK's names for the server's errors (pyslurm calls a missing job
# RPCError/MissingJobError; HTTP calls a bad token "unauthorized").
UnauthorizedError = AuthenticationError
MissingJobError = NotFoundError
NotSupportedError = VerbNotSupportedError


class UnreachableError(JobgateError, ConnectionError):
    """The gateway did not answer: refused, unknown host, timed out, broken link."""

    code = "unreachable"
    transient = True


class WaitTimeout(JobgateError, TimeoutError):
    """A job did not reach a final state within the time given to wait."""

    code = "timeout"
    transient = True


_KNOWN: tuple[type[JobgateError], ...] = (
    InvalidSpecError,
    UnsupportedError,
    NotFoundError,
    ConflictError,
    AuthenticationError,
    PermissionDeniedError,
    BackendError,
    TooLargeError,
    VerbNotSupportedError,
    RateLimitedError,
    ServerError,
)
_BY_CODE: dict[str, type[JobgateError]] = {cls.code: cls for cls in _KNOWN}
_BY_STATUS: dict[int, type[JobgateError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    422: InvalidSpecError,
    429: RateLimitedError,
    501: VerbNotSupportedError,
    503: BackendError,
}


def error_from_response(response: httpx.Response) -> JobgateError:
    """The exception an error answer stands for, carrying the server's message.

    An answer that is not jobgate's JSON (a proxy's page, a crash) still gives an
    error of the class its status suggests, with a message naming the URL.
    """
    code, message, details = _parse_body(response)
    status = response.status_code
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else JobgateError
    if message is None:
        reason = response.reason_phrase or "error"
        message = f"{status} {reason} from {response.request.url}"
    exc = _build(cls, message, details)
    if isinstance(exc, RateLimitedError):
        exc.retry_after = _retry_after(response, details)
    return exc


def _retry_after(response: httpx.Response, details: Any) -> int:
    """Seconds the server asks to wait: its Retry-After header, else the details."""
    for value in (response.headers.get("Retry-After"),
                  details.get("retry_after") if isinstance(details, dict) else None):
        if value is None:
            continue
        try:
            return max(0, int(float(value)))
        except (TypeError, ValueError):
            continue
    return 1


def _parse_body(response: httpx.Response) -> tuple[str | None, str | None, Any]:
    try:
        body = response.json()
    except ValueError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    code = body.get("error")
    message = body.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) and message else None,
        body.get("details"),
    )


def _build(cls: type[JobgateError], message: str, details: Any) -> JobgateError:
    # Subclasses such as InvalidSpecError compose their message from parts; here the
    # server already composed it, so bypass their constructors and keep it verbatim.
    exc = cls.__new__(cls)
    JobgateError.__init__(exc, message, details=details)
    if isinstance(exc, InvalidSpecError):
        first = details[0] if isinstance(details, list) and details else {}
        first = first if isinstance(first, dict) else {}
        exc.field = str(first.get("field", ""))
        exc.value = first.get("value")
        exc.reason = str(first.get("reason", message))
    if isinstance(exc, TooLargeError):
        facts = details if isinstance(details, dict) else {}
        exc.limit = str(facts.get("limit", ""))
        maximum = facts.get("max")
        exc.maximum = maximum if isinstance(maximum, int) else 0
    return exc
