"""Registry jobs in bulk: a batch costs a few statements per chunk of records,
whatever its size, and on PostgreSQL the server works while the service parses.

A batch's records are staged, each at its place in the batch (`ord`), in a
temporary table `registry_batch` (PostgreSQL: one binary array a column, read
by unnest; SQLite: one JSON array read by `json_each`), which the statements
that do the work join:

- `compare`: for the records named by their places, the registry jobs their two
  keys name and which decided columns each would change, compared in SQL (IS
  DISTINCT FROM): only a few small columns come back, and an unchanged record
  costs index probes;
- `write`: the new jobs inserted (`ON CONFLICT DO NOTHING`), the changed ones
  overwritten if still the version compared, and one event per job written; on
  PostgreSQL one statement (data-modifying CTEs), on SQLite three.

Inside `ahead()`, PostgreSQL gets each statement at once and its answer is read
only when asked for (`Reply.result`: the driver's pipeline mode), so the service
parses the next records while the server writes the last ones, instead of the
two taking turns. Reading one answer waits for every statement sent before it.
(A binary COPY stages for less, but cannot run in a pipeline.)

No statement's text grows with the batch (a driver would parse it again each
time). It flushes nothing through the ORM; the service owns the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from itertools import pairwise
from typing import Any, Generic, NamedTuple, TypeVar

import orjson
import psycopg
from sqlalchemy import Dialect, TextClause, TextualSelect, bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from jobgate.domain.registry import REGISTRY
from jobgate.store.pg_arrays import pack_array
from jobgate.store.types import UTCDateTime

# The columns a registry record decides, with their PostgreSQL types.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("native_id", "text"), ("array_job_id", "bigint"), ("array_task_id", "integer"),
    ("name", "text"), ("cluster", "text"), ("partition", "text"), ("account", "text"),
    ("user_name", "text"), ("state", "text"), ("state_reason", "text"), ("held", "boolean"),
    ("num_nodes", "integer"), ("ntasks", "integer"), ("cpus_per_task", "integer"),
    ("memory", "integer"), ("gpus", "integer"), ("time_limit", "integer"),
    ("working_directory", "text"), ("submit_time", "timestamptz"),
    ("start_time", "timestamptz"), ("end_time", "timestamptz"), ("exit_code", "integer"),
    ("exit_code_signal", "integer"), ("registry_data", "jsonb"),
)
NAMES = tuple(name for name, _ in COLUMNS)
# What every registry job has, never taken from a record: it is not run here.
# The spec is the smallest valid one (no script: the scheduler kept it).
REGISTRY_SPEC = {"command": ""}
# The events of the jobs a batch writes.
CREATED = "registry: created"
UPDATED = "registry: updated"
CREATED_DATA = {"source": REGISTRY}
_CONSTANTS = {"standard_output": "''", "standard_error": "''", "priority": "0",
              "source": f"'{REGISTRY}'", "requeue_count": "0"}
T = TypeVar("T")
Statement = TextClause | TextualSelect
_KEY = ("cluster", "native_id", "array_job_id", "array_task_id")
# What an update carries besides the staged row at its place (ord): the job and
# the version compared (`seen`), its runs, and its event (from_state, to_state, data).
_CHANGE = (("ord", "integer"), ("id", "bigint"), ("seen", "timestamptz"),
           ("requeue_count", "integer"), ("from_state", "text"), ("to_state", "text"),
           ("data", "jsonb"))


class Match(NamedTuple):
    """What the ledger has for one record."""

    by_native: int | None  # the registry job (cluster, native_id) names
    by_array: int | None  # the registry job (cluster, array_job_id, array_task_id) names
    requeue_count: int  # of the job matched (by_native, else by_array); 0: none
    updated_at: datetime | None  # its version
    state: str | None
    changed: tuple[str, ...]  # the decided columns the record changes, in NAMES order

    @property
    def id(self) -> int | None:
        return self.by_native if self.by_native is not None else self.by_array


class Reply(Generic[T]):
    """A statement's answer, read from the server when first asked for."""

    def __init__(self, read: Callable[[], T]) -> None:
        self._read: Callable[[], T] | None = read
        self._value: T | None = None

    def result(self) -> T:
        if self._read is not None:
            self._value, self._read = self._read(), None
        return self._value  # type: ignore[return-value]  # read once, above

    @classmethod
    def ready(cls, value: T) -> Reply[T]:
        return cls(lambda: value)


class RegistryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.sqlite = session.get_bind().dialect.name == "sqlite"
        self.prepared = False  # registry_batch is ready for this transaction's rows

    @contextmanager
    def ahead(self) -> Iterator[None]:
        """Within: each statement goes to PostgreSQL at once, and its answer is
        read when asked for (pipeline mode). SQLite runs each on the spot."""
        if self.sqlite:
            yield
            return
        with _driver_errors(), self._driver().pipeline():
            yield

    def stage(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Stage records for `compare` and `write` until the transaction ends,
        each (ord, columns): its place in the batch, unique, and its decided
        columns (submit_time None keeps the job's; registry_data a dict or, as
        JSON, an orjson.Fragment)."""
        if not rows:
            return
        if not self.prepared:
            self._send(_create_sql(self.sqlite), {})
            if self.sqlite:  # PostgreSQL empties it at the end of each transaction
                self._send(text("DELETE FROM registry_batch"), {})
            self.prepared = True
        if self.sqlite:
            self._send(_stage_sql(), {"doc": self._encode(
                [{**columns, "ord": ord} for ord, columns in rows])})
            return
        # PostgreSQL: one binary array a column, which the server reads for
        # less than JSON (no text to parse but the documents).
        arrays = {"ord": pack_array("integer", [ord for ord, _ in rows])}
        for name, kind in COLUMNS:
            arrays[name] = pack_array(kind, [columns[name] for _, columns in rows])
        self._send(_STAGE_ARRAYS, arrays)

    def compare(self, ords: Sequence[int], *, lock: bool = False) -> Reply[list[Match]]:
        """For the staged records at places `ords` (ascending), in that order:
        the registry jobs their keys name and what each changes.

        `write` overwrites a job only if it is still the version compared here;
        `lock` makes sure it is: the jobs are locked first, in id order
        (PostgreSQL; SQLite's BEGIN IMMEDIATE keeps every other writer out already).
        """
        if not ords:
            return Reply.ready([])
        # The answer comes in ord order: a caller zipping it with records in
        # another order would pair each with another record's job.
        assert all(a < b for a, b in pairwise(ords)), "compare places in ascending order"
        places = {"ords": orjson.dumps(list(ords)).decode()}
        if lock and not self.sqlite:
            self._send(_lock_sql(), places)
        rows = self._send(_compare_sql(self.sqlite), places)
        return Reply(lambda: [_match(*row) for row in rows.result()])

    def write(self, new: Sequence[int], changes: Sequence[dict[str, Any]], now: datetime
              ) -> Reply[tuple[list[tuple[Any, ...]], set[int]]]:
        """Insert the staged records at places `new` (a submit_time None becomes
        `now`) and overwrite jobs with the records at the places of `changes`
        (ord; id, seen, requeue_count, from_state, to_state, data), each with its
        event. A new record whose key exists by now is skipped (a concurrent
        batch made it), and so is a change to a job no longer at version `seen`.

        Answers (id, cluster, native_id, array_job_id, array_task_id) of each job
        made, and the ids of the jobs overwritten.
        """
        if not new and not changes:
            return Reply.ready(([], set()))
        params: dict[str, Any] = {"now": now, "spec": orjson.dumps(REGISTRY_SPEC).decode(),
                                  "created": orjson.dumps(CREATED_DATA).decode()}
        if new:
            params["new"] = orjson.dumps(new).decode()
        if changes:
            params["changes"] = self._encode(changes)
        if self.sqlite:
            return Reply.ready(self._write_sqlite(params, changes))
        rows = self._send(_write_sql(bool(new), bool(changes)), params)

        def sorted_out() -> tuple[list[tuple[Any, ...]], set[int]]:
            made, written = [], set()
            for kind, *row in rows.result():
                if kind == "made":
                    made.append(tuple(row))
                else:
                    written.add(row[0])
            return made, written

        return Reply(sorted_out)

    def _send(self, statement: Statement, params: dict[str, Any]) -> Reply[list[Any]]:
        """Run a statement; its rows, if it has any, when asked for."""
        if self.sqlite:
            result = self.session.connection().execute(statement, params)
            return Reply.ready(list(result.all()) if result.returns_rows else [])
        cursor = self._driver().cursor()
        with _driver_errors():
            cursor.execute(_driver_sql(statement, self.session.get_bind().dialect), params)

        def fetch() -> list[Any]:
            with _driver_errors():
                return cursor.fetchall()

        return Reply(fetch)

    def _driver(self) -> psycopg.Connection[Any]:
        driver = self.session.connection().connection.dbapi_connection
        assert isinstance(driver, psycopg.Connection)  # the only PostgreSQL driver here
        return driver

    def _write_sqlite(self, params: dict[str, Any], changes: Sequence[dict[str, Any]]
                      ) -> tuple[list[tuple[Any, ...]], set[int]]:
        connection = self.session.connection()
        events: list[dict[str, Any]] = []
        made: list[tuple[Any, ...]] = []
        if "new" in params:
            for *row, state in connection.execute(_insert_sql(True), params):
                made.append(tuple(row))
                events.append({"job_id": row[0], "from_state": None, "to_state": state,
                               "reason": CREATED, "data": CREATED_DATA})
        written: set[int] = set()
        if changes:
            written = {job_id for job_id, in connection.execute(_update_sql(True), params)}
            events += [{"job_id": row["id"], "from_state": row["from_state"],
                        "to_state": row["to_state"], "reason": UPDATED, "data": row["data"]}
                       for row in changes if row["id"] in written]
        if events:
            connection.execute(_events_sql(), {"events": self._encode(events),
                                               "now": params["now"]})
        return made, written

    def _encode(self, rows: Sequence[dict[str, Any]]) -> str:
        """The rows as one JSON array; times as each dialect stores them."""
        if self.sqlite:  # SQLAlchemy's SQLite DATETIME format: naive UTC
            return orjson.dumps(rows, default=_sqlite_time,
                                option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
        return orjson.dumps(rows).decode()  # ISO 8601 with the offset


def _match(by_native: int | None, by_array: int | None, runs: int | None,
           seen: datetime | None, state: str | None, changed: str,
           stored_data: str | None, staged_data: str | None) -> Match:
    names = tuple(changed.split())
    if stored_data is not None and staged_data is not None and (
            orjson.loads(stored_data) == orjson.loads(staged_data)):
        # SQLite compares the documents as text: the same keys in another
        # order are no change (as jsonb has it).
        names = tuple(name for name in names if name != "registry_data")
    return Match(by_native, by_array, runs or 0, seen, state, names)


@contextmanager
def _driver_errors() -> Iterator[None]:
    """psycopg's errors as SQLAlchemy raises them for statements it runs (a
    unique key taken: IntegrityError), so the service handles both alike."""
    try:
        yield
    except psycopg.Error as exc:
        raise DBAPIError.instance(None, None, exc, psycopg.Error) from exc


def _sqlite_time(value: Any) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"cannot store {type(value).__name__} in a registry row")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# -- statements (built once per dialect and shape) -------------------------------


def _rows(sqlite: bool, param: str, alias: str, columns: Sequence[tuple[str, str]]) -> str:
    """A FROM item: the JSON array of objects bound as `:param`, as a table
    `alias` with `columns` (name, PostgreSQL type)."""
    if sqlite:
        picks = ", ".join(f"json_extract(value, '$.{name}') AS {name}" for name, _ in columns)
        return f"(SELECT {picks} FROM json_each(:{param})) AS {alias}"
    types = ", ".join(f"{name} {kind}" for name, kind in columns)
    return f"json_to_recordset(CAST(:{param} AS json)) AS {alias}({types})"


@cache
def _create_sql(sqlite: bool) -> TextClause:
    """The batch's records, each at its place (ord). PostgreSQL empties it at
    the end of each transaction; SQLite's columns take values as they come (no
    affinity), as a JSON document gives them."""
    if sqlite:
        return text("CREATE TEMP TABLE IF NOT EXISTS registry_batch "
                    f"(ord INTEGER PRIMARY KEY, {', '.join(NAMES)})")
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    return text("CREATE TEMP TABLE IF NOT EXISTS registry_batch "
                f"(ord integer PRIMARY KEY, {columns}) ON COMMIT DELETE ROWS")


@cache
def _stage_sql() -> TextClause:
    """SQLite: stage the records of the JSON array `:doc`, each at its place."""
    names = ", ".join(("ord", *NAMES))
    return text(f"INSERT INTO registry_batch ({names}) SELECT {names} "
                f"FROM {_rows(True, 'doc', 'r', (('ord', 'integer'), *COLUMNS))}")


# PostgreSQL: stage the records given as one array a column, each packed by
# store.pg_arrays (whose dumpers bind it in binary).
_STAGE_ARRAYS = text(
    f"INSERT INTO registry_batch (ord, {', '.join(NAMES)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])"
                for name, kind in (("ord", "integer"), *COLUMNS)) + ")")


def _places(sqlite: bool, param: str) -> str:
    """A subquery: the integers of the JSON array bound as `:param`."""
    if sqlite:
        return f"SELECT value FROM json_each(:{param})"
    return f"SELECT CAST(value AS integer) FROM json_array_elements_text(CAST(:{param} AS json))"


def _key_probes(rows: str) -> tuple[str, str]:
    """Scalar subqueries: the registry job each key of a row of `rows` names.
    Each is one probe of its key's unique index, whatever the planner believes
    of the table (as a join, a stale planner may hash every registry job)."""
    registry = f"jobs.source = '{REGISTRY}'"
    by_native = (f"(SELECT jobs.id FROM jobs WHERE jobs.cluster = {rows}.cluster "
                 f"AND jobs.native_id = {rows}.native_id AND {registry})")
    by_array = (f"(SELECT jobs.id FROM jobs WHERE jobs.cluster = {rows}.cluster "
                f"AND jobs.array_job_id = {rows}.array_job_id "
                f"AND jobs.array_task_id = {rows}.array_task_id AND {registry})")
    return by_native, by_array


@cache
def _compare_sql(sqlite: bool) -> Statement:
    by_native, by_array = _key_probes("b")
    differs = "IS NOT" if sqlite else "IS DISTINCT FROM"

    def new(name: str) -> str:  # a record without a submit time keeps the job's
        return "COALESCE(r.submit_time, m.submit_time)" if name == "submit_time" else f"r.{name}"

    changed = " || ".join(f"CASE WHEN m.{name} {differs} {new(name)} THEN ' {name}' ELSE '' END"
                          for name in NAMES)
    # SQLite compares JSON as text: both documents, where they differ, to parse.
    data = (f"CASE WHEN m.registry_data {differs} r.registry_data THEN m.registry_data END, "
            f"CASE WHEN m.registry_data {differs} r.registry_data THEN r.registry_data END"
            if sqlite else "NULL, NULL")
    # OFFSET 0: the probes run once a row, and the job is fetched by its id.
    fence = "" if sqlite else " OFFSET 0"
    job = ("LEFT JOIN jobs AS m ON m.id = COALESCE(r.by_native, r.by_array)" if sqlite else
           "LEFT JOIN LATERAL (SELECT * FROM jobs "
           "WHERE jobs.id = COALESCE(r.by_native, r.by_array) OFFSET 0) AS m ON true")
    sql = (f"SELECT r.by_native, r.by_array, m.requeue_count, m.updated_at, m.state, "
           f"CASE WHEN m.id IS NULL THEN '' ELSE {changed} END, {data} "
           f"FROM (SELECT b.*, {by_native} AS by_native, {by_array} AS by_array "
           f"FROM registry_batch AS b WHERE b.ord IN ({_places(sqlite, 'ords')}){fence}) AS r "
           f"{job} ORDER BY r.ord")
    if not sqlite:  # psycopg gives aware times itself
        return text(sql)
    return text(sql).columns(updated_at=UTCDateTime())


@cache
def _lock_sql() -> TextClause:
    """Lock the registry jobs that the keys of the staged records at places
    `:ords` name, in id order (PostgreSQL)."""
    by_native, by_array = _key_probes("b")
    staged = f"FROM registry_batch b WHERE b.ord IN ({_places(False, 'ords')})"
    return text(f"SELECT id FROM jobs WHERE id IN (SELECT {by_native} {staged} "
                f"UNION ALL SELECT {by_array} {staged}) ORDER BY id FOR UPDATE")


def _insert_sql(sqlite: bool) -> TextClause:
    names = (*NAMES, *_CONSTANTS, "spec", "updated_at")
    values = (*("COALESCE(n.submit_time, :now)" if name == "submit_time" else f"n.{name}"
                for name in NAMES), *_CONSTANTS.values(),
              ":spec" if sqlite else "CAST(:spec AS jsonb)", ":now")
    return _typed(text(
        f"INSERT INTO jobs ({', '.join(names)}) SELECT {', '.join(values)} "
        f"FROM registry_batch AS n WHERE n.ord IN ({_places(sqlite, 'new')}) ORDER BY n.ord "
        f"ON CONFLICT DO NOTHING RETURNING id, {', '.join(_KEY)}, state"))


def _update_sql(sqlite: bool) -> TextClause:
    job = "jobs" if sqlite else "j"
    assignments = ", ".join(
        f"{name} = COALESCE(r.submit_time, {job}.submit_time)" if name == "submit_time"
        else f"{name} = r.{name}" for name in NAMES)
    returning = "jobs.id" if sqlite else "j.id, c.from_state, c.to_state, c.data"
    return _typed(text(
        f"UPDATE {'jobs' if sqlite else 'jobs AS j'} SET {assignments}, "
        "requeue_count = c.requeue_count, updated_at = :now "
        f"FROM {_rows(sqlite, 'changes', 'c', _CHANGE)} "
        "JOIN registry_batch AS r ON r.ord = c.ord "
        f"WHERE {job}.id = c.id AND {job}.updated_at = c.seen RETURNING {returning}"))


@cache
def _events_sql() -> TextClause:
    """SQLite: the events of a round's jobs."""
    columns = (("job_id", ""), ("from_state", ""), ("to_state", ""), ("reason", ""),
               ("data", ""))
    return _typed(text(
        "INSERT INTO job_events (job_id, at, from_state, to_state, reason, data) "
        "SELECT e.job_id, :now, e.from_state, e.to_state, e.reason, e.data "
        f"FROM {_rows(True, 'events', 'e', columns)}"))


@cache
def _write_sql(new: bool, changes: bool) -> TextClause:
    """PostgreSQL: insert, update and their events in one statement; answers
    ('made', id, cluster, native_id, array_job_id, array_task_id) and ('written', id)."""
    steps, logged, answer = [], [], []
    if new:
        steps.append(f"made AS ({_insert_sql(False).text})")
        logged.append(f"SELECT id, NULL, state, '{CREATED}', CAST(:created AS jsonb) FROM made")
        answer.append(f"SELECT 'made', id, {', '.join(_KEY)} FROM made")
    if changes:
        steps.append(f"written AS ({_update_sql(False).text})")
        logged.append(f"SELECT id, from_state, to_state, '{UPDATED}', data FROM written")
        answer.append("SELECT 'written', id, NULL, NULL, NULL, NULL FROM written")
    steps.append("logged AS (INSERT INTO job_events (job_id, from_state, to_state, reason, "
                 f"data, at) SELECT *, :now FROM ({' UNION ALL '.join(logged)}) AS e)")
    return _typed(text(f"WITH {', '.join(steps)} {' UNION ALL '.join(answer)}"))


def _typed(statement: TextClause) -> TextClause:
    return statement.bindparams(bindparam("now", type_=UTCDateTime()))


@cache
def _driver_sql(statement: Statement, dialect: Dialect) -> str:
    """A statement as psycopg takes it (%(name)s placeholders)."""
    return str(statement.compile(dialect=dialect))
