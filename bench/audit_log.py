"""What one audited call costs the caller: an entry written in its own
transaction (as before) beside an entry buffered and written by the flush thread
(service/audit.py), on SQLite and PostgreSQL, with a writer busy beside it.

    .venv/bin/python bench/audit_log.py [-n 2000] [--postgres]

Prints per-call latency (p50, p99) and calls/s for each way, measured in the
same run; the rows written are counted to check that none is lost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import Engine, func, insert, select

from jobgate.service.audit import AuditLog, entry
from jobgate.store import make_engine, migrate
from jobgate.store.audit import AUDIT, write_entries

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def one_transaction_each(db: Engine, n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        with db.begin() as conn:
            write_entries(conn, [entry(datetime.now(UTC), "ana", None, "POST",
                                       f"/v1/jobs/{i}", 201, "127.0.0.1")])
        times.append(time.perf_counter() - start)
    return times


def buffered(db: Engine, n: int) -> list[float]:
    log = AuditLog(db)
    log.start()
    times = []
    for i in range(n):
        start = time.perf_counter()
        log.record(entry(datetime.now(UTC), "ana", None, "POST", f"/v1/jobs/{i}", 201,
                         "127.0.0.1"))
        times.append(time.perf_counter() - start)
    log.stop()
    return times


def busy_writer(db: Engine, stop: threading.Event) -> None:
    """Another writer (as the engine or a submit would be) taking the write lock."""
    while not stop.is_set():
        with db.begin() as conn:
            conn.execute(insert(AUDIT), [{"at": datetime.now(UTC), "actor": "engine",
                                          "on_behalf_of": None, "method": "X", "path": "/",
                                          "status": 0, "address": None}])
        time.sleep(0.002)


def measure(name: str, db: Engine, n: int) -> None:
    migrate(db)
    for way, run in (("one transaction per call", one_transaction_each),
                     ("buffered, flushed every 50 ms", buffered)):
        stop = threading.Event()
        writer = threading.Thread(target=busy_writer, args=(db, stop))
        writer.start()
        with db.connect() as conn:
            before = conn.scalar(select(func.count()).where(AUDIT.c.actor == "ana")) or 0
        start = time.perf_counter()
        times = run(db, n)
        wall = time.perf_counter() - start
        stop.set()
        writer.join()
        with db.connect() as conn:
            written = (conn.scalar(select(func.count()).where(AUDIT.c.actor == "ana")) or 0) \
                - before
        times.sort()
        print(f"{name:10} {way:30} {n / wall:10.0f} {statistics.median(times) * 1e3:8.3f} "
              f"{times[int(len(times) * 0.99)] * 1e3:8.3f} {written:8}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    print(f"{'store':10} {'audit entry':30} {'calls/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'written':>8}")
    with tempfile.TemporaryDirectory() as home:
        db = make_engine(f"sqlite:///{Path(home) / 'bench.db'}")
        measure("sqlite", db, args.n)
        db.dispose()
    if args.postgres:
        name = f"jobgate_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            db = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
            measure("postgresql", db, args.n)
            db.dispose()
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
