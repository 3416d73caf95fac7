"""The errors in the OpenAPI document: every route declares the error answers it
can give, each an `ErrorOut` ({"error", "message", "details"}).

Errors every route of a kind can give are added to the document as it is built
(routes added by any module are covered): 401, 403 and 429 to routes that take a token, 404
to routes with a path parameter (no such job, cluster, ...), 422 to routes with
parameters or a body (in our shape, not FastAPI's), 400 (unreadable) and 413
(too large) to routes with a body.
Errors only some routes give (409, 501, 503, ...) are declared on those
routes, with `responses=errors(...)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from jobgate.api.schemas import ErrorOut

DESCRIPTIONS = {
    400: "The body could not be read as the content type says (not JSON, not UTF-8)",
    401: "No bearer token, or one that matches no user",
    403: "The caller may not do this (an admin's verb, another project, another user)",
    404: "No such object, or not one the caller may see",
    409: "Not in the object's current state (`details.state` says which it is in)",
    413: "The request body, or a part of it, is over a limit (the message names it)",
    422: "A bad value: `details` names each field, the value and what to fix",
    429: "Too many requests (submissions, failed authentications): retry after "
         "`Retry-After` seconds",
    501: "The job's cluster cannot do this at all",
    503: "The cluster's backend failed; retrying may help",
}

_REF = {"$ref": "#/components/schemas/ErrorOut"}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer these error codes."""
    return {code: {"model": ErrorOut, "description": DESCRIPTIONS[code]} for code in codes}


def install_error_docs(app: FastAPI) -> None:
    """Have `app.openapi()` declare the errors common to each kind of route."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            describe_errors(build())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe_errors(document: dict[str, Any]) -> None:
    """Add the common error answers to every operation of an OpenAPI document."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ErrorOut.model_json_schema(
        ref_template="#/components/schemas/{model}"))
    for methods in document.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            for code in _common_errors(operation):
                declared = responses.get(str(code))
                # FastAPI's own 422 is replaced: its body is not the one we send.
                keep = declared is not None and code != 422 and "description" in declared
                responses[str(code)] = {
                    "description": declared["description"] if keep else DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": _REF}},
                }
    text = json.dumps(document["paths"])
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}" not in text:
            schemas.pop(unused, None)


def _common_errors(operation: dict[str, Any]) -> list[int]:
    parameters = operation.get("parameters", [])
    body = "requestBody" in operation
    codes = []
    if operation.get("security"):
        # Who calls decides what they may do, on any route (an admin's verb, a
        # project they are not in, acting for someone they may not act for); an
        # address with too many failed authentications waits (429).
        codes += [401, 403, 429]
    if any(p.get("in") == "path" for p in parameters):
        codes.append(404)
    if body:
        codes += [400, 413]
    if parameters or body:
        codes.append(422)
    return codes
