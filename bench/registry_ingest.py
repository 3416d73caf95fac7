"""Registry ingest into PostgreSQL, beside a raw psycopg upsert of the same rows.

    .venv/bin/python bench/registry_ingest.py [N] [--batch B] [--no-http]

N records (default 100,000) in batches of B (1,000), each path into its own fresh
database migrated to the current schema, in two passes: every record new
(creates), then every record again with a new state and an end time (updates).

Baseline, measured in the same run: the same ledger rows (mapped from the records
before the clock starts) sent with psycopg `executemany` of `INSERT ... ON
CONFLICT (cluster, native_id) ... DO UPDATE`, one commit per batch: it neither
validates, nor compares, nor logs events. Measured: `RegistryService.ingest`
(records as plain JSON objects: validation, mapping, the key lookup, inserts or
compare-and-set updates, and one event per change; one transaction per batch),
and `POST /v1/registry/jobs` against a `jobgate serve` (JSON both ways, one
connection). The paths take turns batch by batch, so that a machine busy with
something else slows each of them alike.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from jobgate.domain.registry import ledger_columns, parse_record
from jobgate.service.auth import Principal
from jobgate.service.registry import RegistryService
from jobgate.store import make_engine, make_session_factory, migrate
from jobgate.store.registry import REGISTRY_SPEC
from jobgate.store.tables import JobEventRow, JobRow
from server_process import ServerProcess

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
ADMIN = Principal("admin", is_admin=True)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def records(n: int, final: bool) -> list[dict[str, Any]]:
    """Slurm-like jobs on two clusters; one in four an array task."""
    out = []
    for i in range(n):
        submitted = T0 + timedelta(seconds=i)
        record: dict[str, Any] = {
            "job_id": 4_000_000 + i, "job_name": f"sim-{i % 97}", "project_oid": f"p{i % 40}",
            "compute_project_id": f"s{i % 40:03d}", "cluster_id": ("daint", "eiger")[i % 2],
            "partition": ("normal", "debug", "large")[i % 3],
            "nodes": [f"nid{(i + k) % 5000:05d}" for k in range(1 + i % 4)],
            "allocated_resources": [f"cpu={64 * (1 + i % 4)}", f"mem={60 * (1 + i % 4)}G",
                                    f"node={1 + i % 4}", f"billing={64 * (1 + i % 4)}"],
            "working_directory": f"/scratch/u{i % 300}/run{i}",
            "submitted": submitted.isoformat(), "start": (
                submitted + timedelta(seconds=30)).isoformat(),
            "end": (submitted + timedelta(seconds=3600)).isoformat() if final else None,
            "time_limit": 86400, "user": f"u{i % 300}",
            "state": "COMPLETED" if final else "RUNNING", "priority_id": "normal",
            "reservation": None, "reason": "None", "cluster_cockpit_id": 9_000_000 + i,
            "additional_data": {"qos": "normal", "exit_code": "0:0" if final else None},
        }
        if i % 4 == 0:
            record |= {"group_id": 3_000_000 + i // 400, "group_index": i % 400}
        out.append(record)
    return out


@contextmanager
def database() -> Iterator[str]:
    """A fresh PostgreSQL database migrated to the current schema."""
    name = f"jobgate_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


class Raw:
    """psycopg executemany of INSERT ... ON CONFLICT DO UPDATE, the same rows."""

    def __init__(self, url: str, columns: list[str]) -> None:
        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        self.columns = columns
        constants = {"standard_output": "", "standard_error": "", "priority": 0,
                     "requeue_count": 0, "spec": Jsonb(REGISTRY_SPEC), "source": "registry"}
        self.constants = tuple(constants.values())
        names = [*columns, *constants, "updated_at"]
        self.sql = (
            f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) "
            "ON CONFLICT (cluster, native_id) "
            "WHERE source = 'registry' AND native_id IS NOT NULL DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns
                        if c not in ("cluster", "native_id"))
            + ", updated_at = EXCLUDED.updated_at")

    def rows(self, mapped: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Built before the clock starts: the baseline pays for no mapping."""
        return [(*(Jsonb(row[c]) if c == "registry_data" else row[c] for c in self.columns),
                 *self.constants) for row in mapped]

    def send(self, batch: list[tuple[Any, ...]]) -> None:
        now = datetime.now(UTC)
        with self.conn.cursor() as cursor:
            cursor.executemany(self.sql, [(*row, now) for row in batch])
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


class Service:
    """RegistryService.ingest, in process."""

    def __init__(self, url: str, size: int) -> None:
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)
        self.registry = RegistryService(self.sessions, max_batch=size)

    def send(self, batch: list[dict[str, Any]]) -> None:
        outcomes = self.registry.ingest(batch, ADMIN)
        bad = [o for o in outcomes if o.status == "rejected"]
        assert not bad, bad[0]

    def counts(self) -> tuple[int, int]:
        with self.sessions() as session:
            jobs = session.scalar(select(func.count()).select_from(JobRow)) or 0
            events = session.scalar(select(func.count()).select_from(JobEventRow)) or 0
        return jobs, events

    def close(self) -> None:
        self.engine.dispose()


class Http:
    """POST /v1/registry/jobs to a `jobgate serve` (engine off), one connection."""

    def __init__(self, url: str, home: Path, size: int) -> None:
        self.server = ServerProcess(home).start(
            JOBGATE_DATABASE_URL=url, JOBGATE_RUN_ENGINE="false",
            JOBGATE_REGISTRY_MAX_BATCH=str(size))
        self.client = self.server.client()

    def send(self, batch: list[dict[str, Any]]) -> None:
        answer = self.client.post("/v1/registry/jobs", content=orjson.dumps(batch),
                                  headers={"Content-Type": "application/json"})
        answer.raise_for_status()
        assert orjson.loads(answer.content)["rejected"] == 0, answer.text[:500]

    def close(self) -> None:
        self.client.close()
        self.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    passes = [records(args.n, final=False), records(args.n, final=True)]
    mapped = [[ledger_columns(parse_record(r)) for r in rows] for rows in passes]
    for rows in mapped:
        for row in rows:
            row["submit_time"] = row["submit_time"] or T0
    paths = ["raw psycopg executemany upsert", "RegistryService.ingest"]
    if not args.no_http:
        paths.append("POST /v1/registry/jobs")
    seconds = {path: [0.0, 0.0] for path in paths}
    with ExitStack() as stack:
        urls = [stack.enter_context(database()) for _ in paths]
        raw = Raw(urls[0], list(mapped[0][0]))
        sinks: list[Any] = [raw, Service(urls[1], args.batch)]
        if not args.no_http:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "home"
            sinks.append(Http(urls[2], home, args.batch))
        for sink in sinks:
            stack.callback(sink.close)
        inputs = [[[raw.rows(b) for b in batches(rows, args.batch)] for rows in mapped]]
        inputs += [[batches(rows, args.batch) for rows in passes]] * (len(sinks) - 1)
        # The inputs stay in memory all along: keep the collector from walking
        # them again and again, in every path alike.
        gc.collect()
        gc.freeze()
        # Batch by batch, each path in turn (in a rotating order), so that a
        # machine busy with something else slows every path alike.
        for number in range(2):
            for index in range(len(inputs[0][number])):
                for turn in range(len(sinks)):
                    which = (index + turn) % len(sinks)
                    start = time.perf_counter()
                    sinks[which].send(inputs[which][number][index])
                    seconds[paths[which]][number] += time.perf_counter() - start
        jobs, events = sinks[1].counts()
    assert jobs == args.n, jobs
    n = args.n
    print(f"{n:,} records in batches of {args.batch:,} into PostgreSQL, created then "
          f"updated; the service wrote {jobs:,} jobs and {events:,} events")
    print(f"{'what':<34}{'pass':>8}{'seconds':>9}{'records/s':>11}{'of raw':>8}")
    base = seconds[paths[0]]
    for what in paths:
        for number, label in enumerate(("create", "update")):
            took = seconds[what][number]
            print(f"{what:<34}{label:>8}{took:>9.2f}{n / took:>11,.0f}"
                  f"{base[number] / took:>8.0%}")
    total = sum(base)
    for what in paths[1:]:
        print(f"{what:<34}{'both':>8}{sum(seconds[what]):>9.2f}"
              f"{2 * n / sum(seconds[what]):>11,.0f}{total / sum(seconds[what]):>8.0%}")
    print("target: at least 80% of raw and 20,000 records/s")


if __name__ == "__main__":
    main()
