"""The OpenAPI document declares each route's errors in the shape we send, and an
unexpected failure is answered in that shape too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from jobgate.api.app import create_app
from jobgate.api.error_docs import install_error_docs
from jobgate.api.errors import install_error_handlers
from jobgate.config import Settings

ERROR = {"$ref": "#/components/schemas/ErrorOut"}


def document() -> dict[str, Any]:
    return create_app(Settings(home=Path("unused"))).openapi()


def error_schema(operation: dict[str, Any], code: int) -> object:
    return operation["responses"][str(code)]["content"]["application/json"]["schema"]


def test_common_errors_are_declared_on_every_kind_of_route() -> None:
    paths = document()["paths"]
    get_job = paths["/v1/jobs/{job_id}"]["get"]
    assert {"401", "404", "422"} <= set(get_job["responses"])
    assert all(error_schema(get_job, code) == ERROR for code in (401, 404, 422))
    submit = paths["/v1/jobs"]["post"]
    assert {"400", "401", "413", "422", "429"} <= set(submit["responses"])
    assert "404" not in submit["responses"]
    assert {"409", "501", "503"} <= set(paths["/v1/jobs/{job_id}/suspend"]["post"]["responses"])
    assert "403" in paths["/metrics"]["get"]["responses"]
    # The health check takes no token.
    assert set(paths["/healthz"]["get"]["responses"]) == {"200"}


def test_fastapis_validation_shape_is_gone() -> None:
    doc = document()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert set(doc["components"]["schemas"]["ErrorOut"]["required"]) == {"error", "message"}


def test_an_unexpected_failure_is_a_json_500() -> None:
    app = FastAPI()
    install_error_handlers(app)
    install_error_docs(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal",
                             "message": "internal error; the server log has the details",
                             "details": None}


def test_an_unreadable_body_is_a_json_400() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    def echo(body: dict[str, int]) -> dict[str, int]:
        return body

    with TestClient(app) as client:
        answer = client.post("/echo", content=b'{"\xff": 1}',
                             headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
