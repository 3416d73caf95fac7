"""The SDK over an injected transport: the real app in this process (FastAPI's
TestClient transport, lifespan and engine included), on SQLite and PostgreSQL.

The streaming calls (follow) stay on the live-server tests: the in-process
transport buffers a whole answer before returning it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
