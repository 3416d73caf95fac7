"""How error answers become exceptions (a pure function of the answer)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from jobgate import (
    AuthenticationError,
    BackendError,
    ConflictError,
    InvalidSpecError,
    JobgateError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedError,
)
from jobgate.client.errors import (
    MissingJobError,
    NotSupportedError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    error_from_response,
)

URL = "http://gateway.example/v1/jobs"


def answer(status: int, body: Any = None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("GET", URL)
    if text is not None:
        return httpx.Response(status, text=text, request=request)
    return httpx.Response(status, json=body, request=request)


@pytest.mark.parametrize(("status", "code", "cls"), [
    (401, "unauthorized", AuthenticationError),
    (403, "forbidden", PermissionDeniedError),
    (404, "not_found", NotFoundError),
    (409, "conflict", ConflictError),
    (422, "invalid", InvalidSpecError),
    (422, "not_supported", UnsupportedError),
    (503, "backend_error", BackendError),
])
def test_code_picks_the_class_and_the_message_is_the_servers(
    status: int, code: str, cls: type[JobgateError]
) -> None:
    exc = error_from_response(answer(status, {"error": code, "message": "m", "details": [1]}))
    assert type(exc) is cls
    assert (exc.message, str(exc), exc.details) == ("m", "m", [1])


def test_invalid_spec_keeps_the_field_details() -> None:
    details = [{"field": "memory", "value": "lots", "reason": "not a size"}]
    exc = error_from_response(answer(422, {"error": "invalid", "message": "memory: not a size",
                                           "details": details}))
    assert isinstance(exc, InvalidSpecError)
    assert (exc.field, exc.value, exc.reason) == ("memory", "lots", "not a size")


def test_unknown_code_falls_back_on_the_status() -> None:
    assert type(error_from_response(answer(404, {"error": "gone", "message": "x"}))) \
        is NotFoundError
    assert type(error_from_response(answer(405, {"error": "method_not_allowed",
                                                 "message": "x"}))) is JobgateError


def test_an_answer_that_is_not_jobgates_json_names_the_url() -> None:
    exc = error_from_response(answer(502, text="<html>Bad Gateway</html>"))
    assert isinstance(exc, ServerError) and exc.transient
    assert exc.message == f"502 Bad Gateway from {URL}"


def test_the_sdk_names_of_the_errors() -> None:
    assert UnauthorizedError is AuthenticationError and MissingJobError is NotFoundError
    assert issubclass(BackendError, ServerError)
    exc = error_from_response(answer(501, {"error": "not_implemented", "message": "no"}))
    assert isinstance(exc, NotSupportedError)
    assert isinstance(error_from_response(answer(500, {"error": "internal", "message": "x"})),
                      ServerError)


def test_rate_limited_carries_retry_after_from_the_header_or_the_details() -> None:
    request = httpx.Request("POST", URL)
    limited = httpx.Response(429, json={"error": "rate_limited", "message": "slow down",
                                        "details": {"retry_after": 7}},
                             headers={"Retry-After": "3"}, request=request)
    exc = error_from_response(limited)
    assert isinstance(exc, RateLimitedError) and exc.retry_after == 3 and exc.transient
    no_header = httpx.Response(429, json={"error": "rate_limited", "message": "slow",
                                          "details": {"retry_after": 7}}, request=request)
    assert getattr(error_from_response(no_header), "retry_after", None) == 7
