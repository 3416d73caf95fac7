"""Engine, sessions and migrations. Nothing here runs at import."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        WriterTurns().install(engine)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy say when transactions begin (pysqlite would defer it).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable across process crashes in WAL mode; only power loss
    # may drop the last transactions.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class WriterTurns:
    """The threads of this process take turns, first come first served, at
    SQLite's write lock. SQLite's busy handler would have a waiting thread sleep
    1, 2, 5, 10... ms between tries, and a thread that writes in a loop (a
    stream of submissions) would take the lock again before a sleeper woke.
    A turn lasts from BEGIN until the connection goes back to the pool, which a
    session does at commit or rollback."""

    # A thread that waits longer goes on to SQLite's own busy handling (which
    # ends in "database is locked" as before): never a hang.
    WAIT = 30.0

    def __init__(self) -> None:
        self._turns = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._given_up: set[int] = set()  # tickets whose thread stopped waiting

    def install(self, engine: Engine) -> None:
        event.listen(engine, "begin", self._take)
        for name in ("checkin", "close", "invalidate"):
            event.listen(engine.pool, name, self._give_back)

    def _take(self, connection: Any) -> None:
        info = connection.info
        if info.get("jobgate_turn") is not None:
            return  # a second transaction on a connection still holding its turn
        with self._turns:
            ticket = self._next_ticket
            self._next_ticket += 1
            if self._turns.wait_for(lambda: self._serving == ticket, self.WAIT):
                info["jobgate_turn"] = ticket
            else:
                self._given_up.add(ticket)

    def _give_back(self, _dbapi_connection: Any, record: Any, *_: Any) -> None:
        if record is None or record.info.pop("jobgate_turn", None) is None:
            return
        with self._turns:
            self._serving += 1
            while self._serving in self._given_up:
                self._given_up.discard(self._serving)
                self._serving += 1
            self._turns.notify_all()


def _sqlite_begin_immediate(connection: Any) -> None:
    # A deferred transaction that reads, then writes, fails at once with
    # "database is locked" when another writer got in between; taking the write
    # lock up front makes writers queue on busy_timeout instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (run at start-up)."""
    command.upgrade(alembic_config(engine), "head")
