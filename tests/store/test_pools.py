"""A store's connections outlive a burst of requests: each thread of the API
holds one while it works, and a connection opened per request past the pool's
size cost a third of a submit's throughput on PostgreSQL (a server process
forked each time), a tenth of its CPU on SQLite (a file opened, pragmas run)."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import Engine, event, text

from jobgate.config import Settings
from jobgate.store import make_engine, make_reader_engine

BURST = 20  # requests at once, as `bench/api_submit.py` sends at concurrency 16-20


def connections_opened(engine: Engine, bursts: int) -> int:
    """Connections `engine` opens for `bursts` bursts of BURST threads that each
    hold a connection at the same time, then give it back."""
    opened = 0

    def count(*_: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(engine, "connect", count)
    for _ in range(bursts):
        together = threading.Barrier(BURST)

        def work(together: threading.Barrier = together) -> None:
            # The pool's checkout alone: a SQLite writer's transaction would
            # wait for its turn (store/db.py WriterTurns).
            connection = engine.raw_connection()
            try:
                connection.cursor().execute("SELECT 1")
                together.wait(timeout=30)
            finally:
                connection.close()

        threads = [threading.Thread(target=work) for _ in range(BURST)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return opened


def test_a_second_burst_reuses_the_connections_of_the_first(db_url: str) -> None:
    engine = make_engine(db_url, **Settings(database_url=db_url).database_pool)
    try:
        assert connections_opened(engine, bursts=3) == BURST
        reader = make_reader_engine(engine)
        assert connections_opened(reader, bursts=3) == (
            BURST if reader.pool is not engine.pool else 0)  # PostgreSQL: one pool
    finally:
        engine.dispose()


def test_the_postgresql_pool_is_what_the_settings_say() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/postgres"  # not connected to
    settings = Settings(database_url=url, database_pool_size=3, database_max_overflow=2)
    engine = make_engine(url, **settings.database_pool)
    try:
        assert (engine.pool.size(), engine.pool._max_overflow) == (3, 2)  # type: ignore[attr-defined]
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_sessions_the_server_ended_are_replaced_before_use(db_url: str,
                                                           postgres_server: str) -> None:
    """As after a restart of PostgreSQL: every pooled connection's session is
    ended by the server; the next requests work on new ones, none fails."""
    engine = make_engine(db_url, **Settings(database_url=db_url).database_pool)
    try:
        held = [engine.connect() for _ in range(3)]
        pids = {c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in held}
        for connection in held:
            connection.close()  # back to the pool, idle
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
        again = [engine.connect() for _ in range(3)]  # the pool's three, as a burst takes them
        try:
            new_pids = {c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in again}
        finally:
            for connection in again:
                connection.close()
        assert len(new_pids) == 3 and not new_pids & pids
    finally:
        engine.dispose()
