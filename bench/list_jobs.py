"""Filtered `GET /v1/jobs` with cursor pages over a large ledger, against a real server.

    .venv/bin/python bench/list_jobs.py [--jobs 1000000] [--db sqlite,postgresql]
                                        [--requests 200] [--limit 100]
                                        [--env JOBGATE_X=VALUE]

For each store: N jobs are bulk-inserted (executemany through sqlite3; COPY on
PostgreSQL), with realistic skew: mostly ended jobs, a few hundred users, a few
partitions, a tag on a third of them. Then `jobgate serve` (engine off) answers
filtered lists - by state, user, partition, tag, and state + user - walked page by
page with `next_cursor`, from the newest job and from cursors anywhere in the
ledger. Each request is timed at the client (httpx, keep-alive).

Baselines, measured in the same run on the same pages: the very SQL statements the
server runs for each page (captured from SQLAlchemy: on PostgreSQL one, on SQLite the
jobs and then their tags), replayed through the bare driver; `GET /healthz` (what any
HTTP round trip costs); and the floor: bench/bare_page_app.py, a bare ASGI app under
the same server that answers with the bytes of a page jobgate gave (the round trip of
that many bytes and the client's JSON parse, nothing else), asked after each page.
Target: p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from jobgate.domain.states import JobState
from jobgate.store import make_engine, make_session_factory, migrate
from jobgate.store.jobs import JOBS, JobFilter, JobRepository, decode_cursor, encode_cursor
from server_process import ServerProcess, clean_environment, free_port

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
T0 = datetime(2023, 1, 1, tzinfo=UTC)

# (state, share): what a ledger that has run for a while holds.
STATES = [(JobState.COMPLETED, 0.80), (JobState.FAILED, 0.08), (JobState.CANCELLED, 0.05),
          (JobState.TIMEOUT, 0.03), (JobState.PENDING, 0.02), (JobState.RUNNING, 0.015),
          (JobState.OUT_OF_MEMORY, 0.005)]
USERS = [f"user{i:03d}" for i in range(300)]
PARTITIONS = ["batch", "short", "long", "gpu", "debug", "bigmem"]
TAGS = [f"campaign-{i}" for i in range(100)]

# name -> query string of GET /v1/jobs (values from the data above).
FILTERS: dict[str, dict[str, str]] = {
    "none": {},
    "state=RUNNING (1.5%)": {"state": "RUNNING"},
    "state=COMPLETED (80%)": {"state": "COMPLETED"},
    "user (a heavy one)": {"user": USERS[0]},
    "user (a light one)": {"user": USERS[-1]},
    "partition=gpu": {"partition": "gpu"},
    "partition=debug (rare)": {"partition": "debug"},
    "tag (0.3%)": {"tag": TAGS[0]},
    "state=PENDING + user": {"state": "PENDING", "user": USERS[0]},
}


def job_filter(params: dict[str, str]) -> JobFilter:
    return JobFilter(states=(JobState(params["state"]),) if "state" in params else (),
                     tag=params.get("tag"), user_name=params.get("user"),
                     partition=params.get("partition"))


# -- the ledger -----------------------------------------------------------------


def job_rows(n: int, seed: int = 7) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(column values, tag) of jobs 1..n, submitted a few seconds apart."""
    rng = random.Random(seed)
    states = rng.choices([s for s, _ in STATES], [w for _, w in STATES], k=n)
    # A few users submit most jobs (Zipf-like), as on real clusters.
    users = rng.choices(USERS, [1 / (i + 1) for i in range(len(USERS))], k=n)
    partitions = rng.choices(PARTITIONS, [50, 25, 10, 10, 1, 4], k=n)
    spec = json.dumps({"command": "true"})
    for i in range(n):
        job_id = i + 1
        state = states[i]
        submit = T0 + timedelta(seconds=3 * job_id)
        started = state not in (JobState.PENDING,) and (state is not JobState.CANCELLED
                                                        or job_id % 2 == 0)
        start = submit + timedelta(seconds=30) if started else None
        end = (start or submit) + timedelta(seconds=600) if state.final else None
        values = {
            "id": job_id, "name": f"job{job_id}", "state": state.value,
            "state_reason": None, "held": False, "user_name": users[i], "cluster": "local",
            "partition": partitions[i], "account": f"proj{job_id % 40}", "num_nodes": 1,
            "ntasks": 1, "cpus_per_task": 1 + job_id % 4, "memory": 1024,
            "memory_per_cpu": None, "gpus": 0, "time_limit": 3600, "priority": 0,
            "comment": None, "working_directory": f"/scratch/job{job_id}",
            "standard_output": f"/scratch/job{job_id}/slurm-{job_id}.out",
            "standard_error": f"/scratch/job{job_id}/slurm-{job_id}.out",
            "submit_time": submit, "start_time": start, "end_time": end,
            "updated_at": end or start or submit,
            "exit_code": 0 if state is JobState.COMPLETED else None,
            "exit_code_signal": None, "requeue_count": 0, "native_id": None, "spec": spec,
        }
        # About a third of the jobs carry one of 100 tags.
        yield values, TAGS[job_id % 100] if job_id % 3 == 0 else None


def column_template() -> tuple[list[str], dict[str, Any]]:
    """The jobs table's columns, and the value of each the generator leaves out
    (columns other modules add keep working: their default, or NULL)."""
    names = [c.name for c in JOBS.columns]
    defaults: dict[str, Any] = {}
    for column in JOBS.columns:
        default = column.default
        if default is not None and default.is_scalar:
            defaults[column.name] = default.arg
        elif column.nullable:
            defaults[column.name] = None
    return names, defaults


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # the store's form: naive UTC text
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def fill_sqlite(path: Path, n: int) -> None:
    names, defaults = column_template()
    connection = sqlite3.connect(path)
    insert_jobs = (f"INSERT INTO jobs ({', '.join(names)}) "
                   f"VALUES ({', '.join('?' for _ in names)})")
    batch: list[tuple[Any, ...]] = []
    tags: list[tuple[int, str, int]] = []
    with connection:
        connection.execute("PRAGMA synchronous=OFF")
        for values, tag in job_rows(n):
            row = defaults | values
            batch.append(tuple(_sqlite_value(row[name]) for name in names))
            if tag is not None:
                tags.append((values["id"], tag, 0))
            if len(batch) == 50_000:
                connection.executemany(insert_jobs, batch)
                batch.clear()
        connection.executemany(insert_jobs, batch)
        connection.executemany("INSERT INTO job_tags (job_id, tag, position) VALUES (?, ?, ?)",
                               tags)
        # No ANALYZE: jobgate never runs one, so its SQLite plans go without statistics.
    connection.close()


def fill_postgresql(dsn: str, n: int) -> None:
    names, defaults = column_template()
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        tags = []
        with cursor.copy(f"COPY jobs ({', '.join(names)}) FROM STDIN") as copy:
            for values, tag in job_rows(n):
                row = defaults | values
                copy.write_row([json.dumps(row[name]) if isinstance(row[name], dict)
                                else row[name] for name in names])
                if tag is not None:
                    tags.append((values["id"], tag, 0))
        with cursor.copy("COPY job_tags (job_id, tag, position) FROM STDIN") as copy:
            for tag_row in tags:
                copy.write_row(tag_row)
        cursor.execute("SELECT setval(pg_get_serial_sequence('jobs', 'id'), %s)", (n,))
        connection.commit()
        connection.autocommit = True
        cursor.execute("VACUUM ANALYZE jobs")
        cursor.execute("VACUUM ANALYZE job_tags")


@contextmanager
def store(kind: str, n: int, tmp: Path) -> Iterator[str]:
    """A migrated store of `kind` holding n jobs; its SQLAlchemy URL."""
    if kind == "sqlite":
        path = tmp / "bench.db"
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        fill_sqlite(path, n)
        yield url
        return
    name = f"jobgate_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        fill_postgresql(f"host=127.0.0.1 port=5432 user=postgres dbname={name}", n)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- measuring ------------------------------------------------------------------


@dataclass
class Figures:
    api: list[float]
    sql: list[float]
    rows: int = 0


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile in milliseconds (nearest rank)."""
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def cursors(n: int, count: int, rng: random.Random) -> list[str | None]:
    """Where the walks start: the newest job, and anywhere in the ledger."""
    return [None] + [encode_cursor(rng.randint(n // 100, n)) for _ in range(count - 1)]


class SqlReplay:
    """The statements the server's repository runs for a page, captured from
    SQLAlchemy, then replayed and timed through the bare driver."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)
        self.captured: list[tuple[str, Any]] = []
        event.listen(self.engine, "before_cursor_execute", self._capture)
        raw = self.engine.raw_connection()
        if self.engine.dialect.name != "sqlite":
            raw.dbapi_connection.autocommit = True  # as the server's reader sends them
        self.raw = raw
        self.cursor = raw.cursor()

    def _capture(self, _conn: Any, _cursor: Any, statement: str, parameters: Any,
                 _context: Any, _executemany: bool) -> None:
        self.captured.append((statement, parameters))

    def page(self, params: dict[str, str], limit: int, after_id: int | None) -> float:
        self.captured.clear()
        with self.sessions() as session:
            JobRepository(session).list_page(job_filter(params), limit=limit + 1,
                                             after_id=after_id)
        statements = [(s, p) for s, p in self.captured if s.lstrip().upper().startswith("SELECT")]
        start = time.perf_counter()
        for statement, parameters in statements:
            self.cursor.execute(statement, parameters)
            self.cursor.fetchall()
        elapsed = time.perf_counter() - start
        self.raw.commit()  # SQLite: end the read transaction, as the server's session does
        return elapsed

    def close(self) -> None:
        self.raw.close()
        self.engine.dispose()


class BarePage:
    """uvicorn serving bench/bare_page_app.py: every GET answers `page`."""

    def __init__(self, page: bytes, tmp: Path) -> None:
        path = tmp / "bare-page.json"
        path.write_bytes(page)
        self.port = free_port()
        self.log = tmp / "bare-page.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "bare_page_app:app", "--app-dir",
                 str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(self.port),
                 "--lifespan", "off"],
                env={**clean_environment(), "BARE_PAGE": str(path)}, stdout=log,
                stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bare page server exited:\n{self.log.read_text()}")
            try:
                httpx.get(self.url).raise_for_status()
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"bare page server did not come up:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def walk(get: Callable[[dict[str, str]], dict[str, Any]], params: dict[str, str],
         start: str | None, pages: int, between: Callable[[], None] = lambda: None
         ) -> list[tuple[str | None, float, int]]:
    """(cursor, seconds, jobs) of each page of one walk down the list; `between`
    runs after each page, untimed."""
    out = []
    cursor = start
    for _ in range(pages):
        query = params | ({"cursor": cursor} if cursor else {})
        began = time.perf_counter()
        body = get(query)
        out.append((cursor, time.perf_counter() - began, len(body["jobs"])))
        between()
        cursor = body["next_cursor"]
        if cursor is None:
            break
    return out


def measure(url: str, n: int, requests: int, limit: int, tmp: Path,
            env: dict[str, str]) -> tuple[dict[str, Figures], list[float], list[float]]:
    rng = random.Random(11)
    server = ServerProcess(tmp / "home").start(**{
        "JOBGATE_DATABASE_URL": url, "JOBGATE_RUN_ENGINE": "false",
        "JOBGATE_SUBMIT_RATE": "0", **env})
    replay = SqlReplay(url)
    figures: dict[str, Figures] = {}
    floor: list[float] = []
    bare: BarePage | None = None
    try:
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"Authorization": f"Bearer {server.token}"}) as client:

            def get(query: dict[str, str]) -> dict[str, Any]:
                answer = client.get("/v1/jobs", params=query | {"limit": str(limit)})
                answer.raise_for_status()
                body: dict[str, Any] = answer.json()
                return body

            health = []
            for _ in range(requests):
                began = time.perf_counter()
                client.get("/healthz").raise_for_status()
                health.append(time.perf_counter() - began)
            page = client.get("/v1/jobs", params={"limit": str(limit)})
            bare = BarePage(page.raise_for_status().content, tmp)
            bare_client = httpx.Client(base_url=bare.url, timeout=30)

            def floor_page() -> None:
                began = time.perf_counter()
                bare_client.get("/").raise_for_status().json()
                floor.append(time.perf_counter() - began)

            floor_page()  # (a new connection)
            floor.clear()
            for name, params in FILTERS.items():
                get(params)  # warm the caches once, as a server in use has them
                pages: list[tuple[str | None, float, int]] = []
                for start in cursors(n, 10, rng):
                    pages += walk(get, params, start, max(1, requests // 10), floor_page)
                api = [seconds for _, seconds, _ in pages]
                sql = [replay.page(params, limit,
                                   _after(cursor)) for cursor, _, _ in pages]
                figures[name] = Figures(api=api, sql=sql, rows=sum(c for _, _, c in pages))
            bare_client.close()
    finally:
        replay.close()
        server.stop()
        if bare is not None:
            bare.stop()
    return figures, health, floor


def _after(cursor: str | None) -> int | None:
    return decode_cursor(cursor) if cursor else None


def report(kind: str, n: int, fill_seconds: float, figures: dict[str, Figures],
           health: list[float], floor: list[float], limit: int) -> None:
    print(f"\n{kind}: {n:,} jobs inserted in {fill_seconds:.1f} s "
          f"({n / fill_seconds:,.0f} jobs/s); pages of {limit}; times in ms")
    print(f"{'filter':<26}{'pages':>6}{'jobs/pg':>8}{'sql p50':>9}{'sql p99':>9}"
          f"{'api p50':>9}{'api p99':>9}{'api max':>9}  p99<10")
    print(f"{'GET /healthz (baseline)':<26}{len(health):>6}{'':>8}{'':>9}{'':>9}"
          f"{percentile(health, 50):>9.2f}{percentile(health, 99):>9.2f}"
          f"{1000 * max(health):>9.2f}")
    print(f"{'static page, same bytes':<26}{len(floor):>6}{'':>8}{'':>9}{'':>9}"
          f"{percentile(floor, 50):>9.2f}{percentile(floor, 99):>9.2f}"
          f"{1000 * max(floor):>9.2f}  {'yes' if percentile(floor, 99) < 10 else 'NO'}")
    for name, f in figures.items():
        p99 = percentile(f.api, 99)
        print(f"{name:<26}{len(f.api):>6}{f.rows / len(f.api):>8.0f}"
              f"{percentile(f.sql, 50):>9.2f}{percentile(f.sql, 99):>9.2f}"
              f"{percentile(f.api, 50):>9.2f}{p99:>9.2f}{1000 * max(f.api):>9.2f}"
              f"  {'yes' if p99 < 10 else 'NO'}")
    everything = [s for f in figures.values() for s in f.api]
    print(f"{'all filters':<26}{len(everything):>6}{'':>8}"
          f"{percentile([s for f in figures.values() for s in f.sql], 50):>9.2f}"
          f"{percentile([s for f in figures.values() for s in f.sql], 99):>9.2f}"
          f"{percentile(everything, 50):>9.2f}{percentile(everything, 99):>9.2f}"
          f"{1000 * max(everything):>9.2f}")
    shares = [s / a for f in figures.values() for s, a in zip(f.sql, f.api, strict=True)]
    print(f"(median share of the API time spent in SQL: {statistics.median(shares):.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the store")
    parser.add_argument("--db", default="sqlite,postgresql",
                        help="stores to measure: sqlite, postgresql or both (comma)")
    parser.add_argument("--requests", type=int, default=200,
                        help="page requests per filter (10 walks down the list)")
    parser.add_argument("--limit", type=int, default=100, help="jobs per page")
    parser.add_argument("--env", action="append", default=[], metavar="JOBGATE_X=VALUE",
                        help="set in jobgate's environment (e.g. JOBGATE_TOKEN_CACHE_SECONDS=5)")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    for kind in args.db.split(","):
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            began = time.perf_counter()
            with store(kind, args.jobs, tmp) as url:
                fill_seconds = time.perf_counter() - began
                figures, health, floor = measure(url, args.jobs, args.requests, args.limit, tmp,
                                                 env)
            report(kind, args.jobs, fill_seconds, figures, health, floor, args.limit)


if __name__ == "__main__":
    main()
