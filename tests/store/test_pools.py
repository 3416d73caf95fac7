"""A store's connections outlive a burst of requests: each thread of the API
holds one while it works, and a connection opened per request past the pool's
size cost a third of a submit's throughput on PostgreSQL (a server process
forked each time), a tenth of its CPU on SQLite (a file opened, pragmas run)."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, event

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
        assert connections_opened(reader, bursts=3) == (BURST if reader is not engine else 0)
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
