"""Two gateways on one store: one engine runs the jobs, the other stands by."""

from __future__ import annotations

import time

from api_client import Api
from fastapi.testclient import TestClient

from jobgate.api.app import create_app
from jobgate.config import Settings


def test_second_gateway_stands_by_then_takes_over(settings: Settings) -> None:
    first = TestClient(create_app(settings)).__enter__()
    second_client = TestClient(create_app(settings)).__enter__()
    try:
        token = settings.admin_token_path.read_text().strip()
        second = Api(second_client, token)
        time.sleep(0.5)  # a few engine rounds each
        engines = [first.app.state.gateway.engine,  # type: ignore[attr-defined]
                   second.gateway.engine]
        assert sum(engine.hold_lease() for engine in engines) == 1
        job = second.submit(command="echo one")  # accepted here, run by the holder
        assert second.wait_final(job["id"])["state"] == "COMPLETED"
    finally:
        first.__exit__(None, None, None)  # releases its lease
    try:
        job = second.submit(command="echo two")
        assert second.wait_final(job["id"])["state"] == "COMPLETED"
        assert second.gateway.engine.hold_lease()
    finally:
        second_client.__exit__(None, None, None)
