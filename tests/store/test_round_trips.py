"""What a page of jobs costs on PostgreSQL, counted in round trips to the server
(libpq's own trace of the messages sent): the token's lookup and the page, one
each. A pooled connection used to cost a ping before each (SQLAlchemy's
pre-ping), and the token's lookup a BEGIN and a ROLLBACK around it: six round
trips where two do (a page's time on a quiet server is mostly round trips)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import Engine, event

from jobgate.config import Settings
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway
from jobgate.store.jobs import JobFilter

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


class Trace:
    """What the connections of `engine`'s pool send, from their first message
    (what the pool itself sends before handing one out included)."""

    def __init__(self, engine: Engine, file: IO[str]) -> None:
        self.engine = engine
        self.file = file
        event.listen(engine, "connect", self._on)
        engine.dispose()  # the connections made before this one are not traced

    def stop(self) -> None:
        """Before the file closes: no connection may write to its descriptor after."""
        event.remove(self.engine, "connect", self._on)
        self.engine.dispose()

    def _on(self, dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.pgconn.trace(self.file.fileno())

    def sent(self) -> list[str]:
        """The messages sent since the last call: 'Query "BEGIN"', ..."""
        self.file.seek(0)
        lines = [line.split("\t") for line in self.file.read().splitlines()]
        self.file.seek(0)
        self.file.truncate()
        return [" ".join(field.strip() for field in fields[3:])
                for fields in lines if len(fields) > 3 and fields[1] == "F"]


def round_trips(sent: list[str]) -> int:
    """Each simple query and each Sync of the extended protocol waits for the server."""
    return sum(message.startswith(("Query", "Sync")) for message in sent)


@pytest.fixture
def gateway(tmp_path: Path, db_url: str) -> Iterator[Gateway]:
    gateway = Gateway(Settings.load(home=tmp_path / "home", database_url=db_url,
                                    run_engine=False))
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def test_a_page_of_jobs_costs_two_round_trips(gateway: Gateway) -> None:
    token = gateway.settings.admin_token_path.read_text().strip()
    with tempfile.TemporaryFile(mode="w+") as file:
        trace = Trace(gateway.db, file)
        try:
            gateway.auth.authenticate(token)  # a connection is opened, the token touched
            gateway.jobs.list_page(JobFilter(), gateway.auth.authenticate(token), limit=10)
            trace.sent()

            user = gateway.auth.authenticate(token)
            lookup = trace.sent()
            gateway.jobs.list_page(JobFilter(), user, limit=10)
            page = trace.sent()
        finally:
            trace.stop()

    assert round_trips(lookup) == 1, lookup
    assert round_trips(page) == 1, page
    assert not [m for m in lookup + page if "BEGIN" in m or "ROLLBACK" in m]
    assert isinstance(user, Principal) and user.is_admin
