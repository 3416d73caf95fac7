"""Engine, sessions and migrations. Nothing here runs at import."""

from __future__ import annotations

import fcntl
import json
import os
import select
import threading
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from jobgate.store.pg_arrays import register_packed_arrays

MIGRATIONS = Path(__file__).parent / "migrations"


def _json_text(value: Any) -> str:
    # JSON columns (a job's spec, its events' data) are written for every job,
    # and orjson takes half the json module's time. Non-string keys become
    # strings, as json.dumps makes them; what orjson refuses (an integer past
    # 64 bits) is written as before.
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


# For every engine: the JSON columns' writer. They are read with the json module:
# orjson reads an integer past 64 bits as a float, silently.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text}

# Connections a SQLite pool keeps open. The API runs its sync work on up to 40
# threads (anyio's default limiter), each holding a connection while it works:
# a smaller pool opened and closed a connection (with its pragmas) for every
# request past its size, a tenth of a submit's CPU. An idle SQLite connection
# costs a file handle.
SQLITE_POOL = {"pool_size": 40, "max_overflow": 20}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys."""
    kwargs = JSON_CODEC | kwargs
    if url.startswith("sqlite"):
        database = url.removeprefix("sqlite:///")
        in_file = url.startswith("sqlite:///") and not database.startswith(":memory:")
        if in_file:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs = SQLITE_POOL | kwargs
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        _render_index_hints(engine)
        WriterTurns(Path(database + "-writer.lock") if in_file else None).install(engine)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", register_packed_arrays)
    event.listen(engine, "checkout", _drop_if_closed_by_server)
    return engine


def _drop_if_closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection, checked before use: an idle one has
    nothing to read, so a readable socket means the server ended the session
    (a restart, an administrator): its farewell or end of file waits there.
    The pool then opens a new connection in its place, and the request never
    sees the old one fail. A poll costs microseconds; SQLAlchemy's pre-ping
    costs a round trip to the server on every checkout (two a request: the
    token, then the page; 5% of a page of jobs' time in a profile)."""
    if dbapi_connection.closed:
        raise exc.DisconnectionError("the connection is closed")
    poller = select.poll()  # not select.select: a descriptor may be past 1024
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise exc.DisconnectionError("the server ended this connection's session")


def _render_index_hints(engine: Engine) -> None:
    """Let `select().with_hint(table, "INDEXED BY name", "sqlite")` reach SQLite
    (SQLAlchemy's SQLite compiler drops table hints): for a query whose best
    index SQLite's planner cannot tell without statistics."""
    base = engine.dialect.statement_compiler

    class HintingCompiler(base):  # type: ignore[valid-type,misc]
        def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
            return text

    engine.dialect.statement_compiler = HintingCompiler


def make_reader_engine(engine: Engine) -> Engine:
    """An engine for transactions that only read. On SQLite, a separate pool whose
    connections refuse to write (query_only) and begin deferred: in WAL mode a
    reader sees a snapshot without the write lock, so reads neither queue behind
    writers nor hold them up. On PostgreSQL, `engine`'s pool in autocommit: a
    read sends its statements alone, not wrapped in a BEGIN and a ROLLBACK
    (each a round trip to the server: a token's lookup took three instead of
    one). Under READ COMMITTED each statement sees its own snapshot either way."""
    if engine.dialect.name != "sqlite":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    pool = SQLITE_POOL if isinstance(engine.pool, QueuePool) else {}
    reader = create_engine(engine.url, connect_args={"check_same_thread": False, "timeout": 30},
                           **pool, **JSON_CODEC)
    event.listen(reader, "connect", _sqlite_reader_pragmas)
    event.listen(reader, "begin", _sqlite_begin_deferred)
    return reader


def _sqlite_reader_pragmas(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA query_only=ON")


def _sqlite_begin_deferred(connection: Any) -> None:
    # One snapshot for the whole transaction (pysqlite would begin none).
    connection.exec_driver_sql("BEGIN")


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
    """Writers take turns, first come first served, at SQLite's write lock.

    SQLite's busy handler has a waiting writer sleep 1, 2, 5, 10... up to 100 ms
    between tries, so a writer that writes in a loop (a stream of submissions)
    takes the lock again and again before a sleeper wakes. Instead:
    - the threads of a process queue here, each on a gate of its own, and a turn
      ends by opening the next gate only (no herd of threads woken to find it
      is not theirs);
    - between processes on one database (`serve --workers N`, the CLI), the
      thread whose turn it is also holds an exclusive flock on a file beside the
      database: the kernel wakes the next process the moment it is released,
      and frees it should its holder die.
    A turn lasts from BEGIN until the connection goes back to the pool, which a
    session does at commit or rollback."""

    # A thread that waits longer goes on to SQLite's own busy handling (which
    # ends in "database is locked" as before): never a hang.
    WAIT = 30.0

    def __init__(self, lock_path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._taken = False
        self._waiting: deque[threading.Lock] = deque()
        self._lock_path = lock_path
        self._lock_file: int | None = None

    def install(self, engine: Engine) -> None:
        event.listen(engine, "begin", self._take)
        for name in ("checkin", "close", "invalidate"):
            event.listen(engine.pool, name, self._give_back)

    def _take(self, connection: Any) -> None:
        info = connection.info
        if info.get("jobgate_turn"):
            return  # a second transaction on a connection still holding its turn
        if self._take_in_process():
            info["jobgate_turn"] = True
            self._lock_across_processes()

    def _take_in_process(self) -> bool:
        with self._lock:
            if not self._taken:
                self._taken = True
                return True
            gate = threading.Lock()
            gate.acquire()
            self._waiting.append(gate)
        if gate.acquire(timeout=self.WAIT):
            return True  # handed over by the previous turn
        with self._lock:
            if gate in self._waiting:
                self._waiting.remove(gate)
                return False
        return True  # handed over just as the wait ended

    def _lock_across_processes(self) -> None:
        if self._lock_path is None:
            return
        if self._lock_file is None:
            self._lock_file = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                      0o600)
        # Blocks until the writer of another process is done (its transaction).
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)

    def _give_back(self, _dbapi_connection: Any, record: Any, *_: Any) -> None:
        if record is None or not record.info.pop("jobgate_turn", None):
            return
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._taken = False


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
