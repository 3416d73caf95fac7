"""Fixtures of the CLI tests: one real gateway, and `jobgate` run as a real process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobgate import Client
from server_process import LiveServer, Run, live_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("cli-server")) as running:
        yield running


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, server.token) as c:
        yield c


@pytest.fixture
def jobgate_cli(server: LiveServer, tmp_path: Path) -> Run:
    """Run `python -m jobgate ARGS` in tmp_path against the server; never raises."""

    def run(*args: str, stdin: str | None = None, timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobgate", *args], input=stdin, cwd=tmp_path,
            env=server.env(**env), capture_output=True, text=True, timeout=timeout,
        )

    return run
