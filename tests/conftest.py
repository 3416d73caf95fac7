"""Shared fixtures: a real SQLite file and a real PostgreSQL database per test."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

# tests/ has no __init__.py: make its shared helpers (server_process) importable.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from jobgate import Client
from server_process import LiveServer, live_server

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def _ensure_postgres() -> None:
    try:
        psycopg.connect(PG_ADMIN_DSN, connect_timeout=3).close()
        return
    except psycopg.OperationalError:
        pass
    versions = sorted(Path("/etc/postgresql").iterdir(), key=lambda p: p.name)
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"],
        check=True,
    )


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The local PostgreSQL server, started when it is not running."""
    _ensure_postgres()
    return PG_ADMIN_DSN


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind; PostgreSQL's is created and dropped here."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobgate.db'}"
        return
    admin_dsn = request.getfixturevalue("postgres_server")
    name = f"jobgate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real `jobgate serve` shared by the SDK and CLI tests."""
    with live_server(tmp_path_factory.mktemp("live-server")) as running:
        yield running


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, server.token) as c:
        yield c
