"""Fixtures of the SDK tests: one real gateway for the session, a client per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from jobgate import Client
from server_process import LiveServer, live_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("sdk-server")) as running:
        yield running


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, server.token) as c:
        yield c


@pytest.fixture
def tag() -> str:
    """A tag no other test uses, to find this test's jobs in the shared ledger."""
    return f"t-{uuid.uuid4().hex[:10]}"
