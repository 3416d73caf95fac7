"""The one map from errors to HTTP answers: {"error", "message", "details"}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobgate.errors import (
    AuthenticationError,
    BackendError,
    ConflictError,
    InvalidSpecError,
    JobgateError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TooLargeError,
    UnsupportedError,
    VerbNotSupportedError,
)

STATUS: dict[type[JobgateError], int] = {
    InvalidSpecError: 422,
    UnsupportedError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    BackendError: 503,
    VerbNotSupportedError: 501,
    RateLimitedError: 429,
    TooLargeError: 413,
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": code, "message": message, "details": details}


def status_of(exc: JobgateError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


async def _jobgate_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobgateError)
    headers = None
    if isinstance(exc, AuthenticationError):
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(error_body(exc.code, exc.message, exc.details),
                        status_code=status_of(exc), headers=headers)


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # A route that authenticates on its own thread (deps.py Caller) has its body
    # validated first: a caller who is not who they claim hears 401, not 422.
    caller = getattr(request.state, "caller", None)
    if caller is not None and caller.principal is None:
        try:
            await run_in_threadpool(caller.authenticate, request.app.state.gateway)
        except JobgateError as refused:
            return await _jobgate_error(request, refused)
    details = [
        {
            # Drop the "body"/"query" prefix: clients know fields by name.
            "field": ".".join(str(p) for p in err["loc"][1:]) or str(err["loc"][0]),
            # A lone surrogate is valid JSON but cannot be sent back as UTF-8.
            "value": err["input"].encode(errors="backslashreplace").decode()
            if isinstance(err.get("input"), str)
            else err.get("input") if isinstance(err.get("input"), (int, float, bool))
            else None,
            "reason": err["msg"],
        }
        for err in exc.errors()
    ]
    message = "; ".join(f"{d['field']}: {d['reason']}" for d in details)
    return JSONResponse(error_body("invalid", message, details), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        # Not a missing job: a wrong path, as a client with a bad base URL sends.
        code, message = "no_route", f"no such route: {request.method} {request.url.path}"
    else:
        code = {400: "bad_request", 405: "method_not_allowed"}.get(exc.status_code,
                                                                   "http_error")
        message = str(exc.detail)
    return JSONResponse(error_body(code, message), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


def too_large_response(max_bytes: int, limit: str | None = None) -> JSONResponse:
    message = f"request body larger than {max_bytes} bytes"
    if limit is not None:  # say which setting to raise
        message += f" (set by {limit})"
    return JSONResponse(
        error_body("too_large", message,
                   {"limit": limit, "max": max_bytes} if limit is not None else None),
        status_code=413,
    )


async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
    # A bug: the server logs it with its traceback; the client gets the usual shape.
    return JSONResponse(error_body("internal", "internal error; the server log has the details"),
                        status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(JobgateError, _jobgate_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
