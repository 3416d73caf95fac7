"""The SDK over an injected transport: the real app in this process (FastAPI's
TestClient transport, lifespan and engine included), on SQLite and PostgreSQL.

The streaming calls (follow) stay on the live-server tests: the in-process
transport buffers a whole answer before returning it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from jobgate import Client, ConflictError, JobState, NotFoundError
from jobgate.api.app import create_app
from jobgate.config import Settings


@pytest.fixture
def in_process(tmp_path: Path, db_url: str) -> Iterator[Client]:
    settings = Settings.load(home=tmp_path / "home", database_url=db_url, kill_wait=1.0,
                             engine_interval=0.1)
    with TestClient(create_app(settings)) as app_client:
        token = settings.admin_token_path.read_text().strip()
        # TestClient is an httpx.Client; its transport calls the ASGI app directly.
        transport = app_client._transport
        with Client("http://testserver", token, transport=transport, retries=0) as client:
            yield client


def test_submit_list_cancel_in_process(in_process: Client, tmp_path: Path) -> None:
    done = in_process.submit(command="echo in-process", account="acct", tags=["ip"],
                             working_directory=str(tmp_path))
    held = in_process.submit(command="true", hold=True, tags=["ip"])

    assert done.wait(timeout=60) is JobState.COMPLETED
    assert done.read_stdout() == "in-process\n"
    assert [j.id for j in in_process.list(tag="ip")] == [held.id, done.id]
    assert [j.id for j in in_process.list(account="acct")] == [done.id]
    assert held.cancel().state is JobState.CANCELLED
    with pytest.raises(ConflictError):
        held.cancel()
    with pytest.raises(NotFoundError):
        in_process.get(10**6)
    assert [e["to_state"] for e in held.events()] == ["PENDING", "CANCELLED"]
    assert in_process.health()


def test_an_array_filter_holds_even_where_the_gateway_ignores_it(
        tmp_path: Path, db_url: str) -> None:
    # A gateway older than the `array` filter lists every job: the client must
    # still hand back only that array's tasks (`jobgate cancel --array` cancels
    # what it is given). The real app, with the parameter taken off the request.
    settings = Settings.load(home=tmp_path / "home", database_url=db_url, engine_interval=0.1)
    with TestClient(create_app(settings)) as app_client:
        token = settings.admin_token_path.read_text().strip()
        real = app_client._transport

        class OlderGateway(httpx.BaseTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                request.url = request.url.copy_remove_param("array")
                return real.handle_request(request)

        with Client("http://testserver", token, transport=OlderGateway(), retries=0) as client:
            first = client.submit(command="true", array="0-2", hold=True)
            client.submit(command="true", array="0-1", hold=True)
            client.submit(command="true", hold=True)
            tasks = client.list(array=first.id)
            assert [(j.array_id, j.array_task_id) for j in tasks] == [
                (first.id, 2), (first.id, 1), (first.id, 0)]
            assert len(client.list()) == 6  # what the gateway itself answered
