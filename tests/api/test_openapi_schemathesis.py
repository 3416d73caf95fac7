"""Schemathesis over the OpenAPI document a real `jobgate serve` serves: for every
operation, generated requests (valid and invalid) get no 5xx and no answer the
document does not describe (status code, content type, body, headers).

SQLite only; the engine is off, so generated jobs are recorded but never run
(nothing random executes on this machine)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobgate.api.app import create_app
from jobgate.config import Settings
from server_process import ServerProcess

# A few hundred requests over all operations, well under a minute (more: set
# SCHEMATHESIS_EXAMPLES for a deeper run).
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))

# No 5xx, and no answer the document does not describe. (Not `negative_data_rejection`:
# pydantic's lax coercions, such as `false` taken as 0 for an integer, are accepted
# on purpose; invalid requests are still sent, and must get a documented 4xx.)
CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance,
    response_schema_conformance, response_headers_conformance,
]

# Operations the app has (building it has no side effects), known at collection
# so that each is a test of its own; a route added later is tested without a word here.
DOCUMENT = create_app(Settings(home=Path("unused"))).openapi()
OPERATIONS = sorted(f"{method.upper()} {path}" for path, methods in DOCUMENT["paths"].items()
                    for method in methods)
# Event streams never end: schemathesis reads them until its timeout.
STREAMS = {f"{method.upper()} {path}" for path, methods in DOCUMENT["paths"].items()
           for method, operation in methods.items()
           if "text/event-stream" in operation["responses"].get("200", {}).get("content", {})}
# Seconds a long-poll (`wait`) or a job wait (`timeout`) may be asked to last here.
MAX_WAIT = 0.5


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("schemathesis") / "home").start(
        # No rate limits: requests without a token would soon throttle every other.
        JOBGATE_RUN_ENGINE="false", JOBGATE_SUBMIT_RATE="0", JOBGATE_AUTH_FAILURE_LIMIT="0")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(served: ServerProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json")


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms(label: str, served: ServerProcess,
                            api_schema: schemathesis.BaseSchema) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served document"
    token = f"Bearer {served.token}"
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                         operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def conforms(case: schemathesis.Case) -> None:
        query = case.query if isinstance(case.query, dict) else {}
        for name in ("wait", "timeout"):
            value = query.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) \
                    and 0 <= value <= 60:
                query[name] = min(value, MAX_WAIT)
        if query.get("follow") is True:
            # Follows output until the job ends, and with the engine off none does.
            query["follow"] = False
        authenticate(case, token)
        case.call_and_validate(checks=CHECKS, timeout=1 if label in STREAMS else 30)

    conforms()


def authenticate(case: schemathesis.Case, token: str) -> None:
    """The admin's token in place of a generated one; none when the case is about
    leaving the header out (the answer must then be 401)."""
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    generated = len(headers) != len(case.headers or {})
    info = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if generated or info is None or info.mode is not GenerationMode.NEGATIVE:
        headers["Authorization"] = token
    case.headers = headers
