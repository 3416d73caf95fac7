"""Registry jobs in bulk: one statement per step for a whole batch of records.

A batch travels to the database as one JSON array, read as a table there
(PostgreSQL's `jsonb_to_recordset`, SQLite's `json_each`): a lookup of every
existing key, an `INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING` of the
new jobs, an `UPDATE ... FROM` of the changed ones and one `INSERT` of all the
events. Four statements for a thousand records, whatever the dialect, and no
statement whose text grows with the batch (a driver parses those again each time).
It flushes nothing through the ORM; the service owns the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Boolean, Executable, TextClause, bindparam, text
from sqlalchemy.orm import Session

from jobgate.domain.registry import REGISTRY
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
TIMES = frozenset(name for name, kind in COLUMNS if kind == "timestamptz")
# What every registry job has, never taken from a record: it is not run here.
# The spec is the smallest valid one (no script: the scheduler kept it).
REGISTRY_SPEC = {"command": ""}
_CONSTANTS = {"standard_output": "''", "standard_error": "''", "priority": "0",
              "source": f"'{REGISTRY}'"}
_KEY = ("cluster", "native_id", "array_job_id", "array_task_id")


@dataclass(frozen=True)
class Stored:
    """A registry job as the ledger has it: its id, runs and decided columns."""

    id: int
    requeue_count: int
    updated_at: datetime
    columns: dict[str, Any]


class RegistryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.sqlite = session.get_bind().dialect.name == "sqlite"

    # -- statements -----------------------------------------------------------

    def find(self, keys: Sequence[dict[str, Any]], *, lock: bool = False) -> list[Stored]:
        """The registry jobs that any of `keys` (cluster, native_id, array_job_id,
        array_task_id) names, by either key. `update` writes a job only if it is
        still the version read here; `lock` makes sure it is (PostgreSQL; SQLite's
        BEGIN IMMEDIATE keeps every other writer out already)."""
        if not keys:
            return []
        rows = _Rows(self.sqlite, "keys", [(name, dict(COLUMNS)[name]) for name in _KEY])
        by_native = self._ids(rows, f"cluster = {rows['cluster']} AND "
                                    f"native_id = {rows['native_id']}")
        by_array = self._ids(rows, f"cluster = {rows['cluster']} AND "
                                   f"array_job_id = {rows['array_job_id']} AND "
                                   f"array_task_id = {rows['array_task_id']}")
        # The JSON document as text, parsed here (faster than the driver's loader).
        names = ", ".join("CAST(registry_data AS TEXT)" if name == "registry_data" else name
                          for name in NAMES)
        sql = (f"SELECT id, requeue_count, updated_at, {names} FROM jobs "
               f"WHERE id IN ({by_native} UNION ALL {by_array}) ORDER BY id")
        if lock and not self.sqlite:
            sql += " FOR UPDATE"
        query: Executable = text(sql)
        if self.sqlite:  # psycopg gives aware times itself
            query = text(sql).columns(
                **{name: UTCDateTime() for name in (*TIMES, "updated_at")}, held=Boolean())
        result = self.session.connection().execute(query, {"keys": self._encode(keys)})
        found = []
        for row in result.all():
            columns = dict(zip(NAMES, row[3:], strict=True))
            columns["registry_data"] = orjson.loads(columns["registry_data"])
            found.append(Stored(row[0], row[1], row[2], columns))
        return found

    def _ids(self, rows: _Rows, match: str) -> str:
        """A query of the ids of the registry jobs that rows of `rows` match."""
        if self.sqlite:
            return (f"SELECT jobs.id FROM jobs JOIN {rows.source()} ON {match} "
                    f"WHERE jobs.source = '{REGISTRY}'")
        # One probe of the key's unique index per row, whatever the planner
        # believes of the table (LIMIT keeps it from making this a hash join
        # over every registry job, as it may while its statistics lag a bulk load).
        return (f"SELECT j.id FROM {rows.source()} CROSS JOIN LATERAL (SELECT id FROM jobs "
                f"WHERE {match} AND source = '{REGISTRY}' LIMIT 1) AS j")

    def insert(self, rows: Sequence[dict[str, Any]], now: datetime) -> list[tuple[Any, ...]]:
        """Insert new registry jobs; a row whose key exists by now is skipped (a
        concurrent batch made it). Returns (id, cluster, native_id, array_job_id,
        array_task_id) of each row inserted."""
        if not rows:
            return []
        source = _Rows(self.sqlite, "doc", COLUMNS)
        constants = {**_CONSTANTS, "requeue_count": "0", "spec": self._json_param("spec"),
                     "updated_at": ":now"}
        where = " WHERE true" if self.sqlite else ""  # SQLite: else ON reads as a join's
        statement = text(
            f"INSERT INTO jobs ({', '.join((*NAMES, *constants))}) "
            f"SELECT {', '.join((*(source[n] for n in NAMES), *constants.values()))} "
            f"FROM {source.source()}{where} ON CONFLICT DO NOTHING "
            f"RETURNING id, {', '.join(_KEY)}")
        result = self.session.connection().execute(self._typed(statement), {
            "doc": self._encode(rows), "spec": orjson.dumps(REGISTRY_SPEC).decode(), "now": now})
        return [tuple(row) for row in result.all()]

    def update(self, rows: Sequence[dict[str, Any]], now: datetime) -> set[int]:
        """Overwrite jobs by id with their new decided columns and requeue_count,
        each only if it is still the version `find` read (its `seen` updated_at).
        Returns the ids written; a job another batch wrote meanwhile is not."""
        if not rows:
            return set()
        columns = (("id", "bigint"), ("seen", "timestamptz"), *COLUMNS,
                   ("requeue_count", "integer"))
        source = _Rows(self.sqlite, "doc", columns)
        assignments = ", ".join(f"{name} = {source[name]}"
                                for name, _ in columns if name not in ("id", "seen"))
        target = "jobs" if self.sqlite else "jobs AS j"
        job = "jobs" if self.sqlite else "j"
        statement = text(f"UPDATE {target} SET {assignments}, updated_at = :now "
                         f"FROM {source.source()} WHERE {job}.id = {source['id']} "
                         f"AND {job}.updated_at = {source['seen']} RETURNING {job}.id")
        result = self.session.connection().execute(self._typed(statement),
                                                   {"doc": self._encode(rows), "now": now})
        return {job_id for job_id, in result.all()}

    def add_events(self, events: Sequence[dict[str, Any]], now: datetime) -> None:
        """One event per job: job_id, from_state, to_state, reason, data."""
        if not events:
            return
        source = _Rows(self.sqlite, "doc", (
            ("job_id", "bigint"), ("from_state", "text"), ("to_state", "text"),
            ("reason", "text"), ("data", "jsonb")))
        statement = text(
            "INSERT INTO job_events (job_id, at, from_state, to_state, reason, data) "
            f"SELECT {source['job_id']}, :now, {source['from_state']}, {source['to_state']}, "
            f"{source['reason']}, {source['data']} FROM {source.source()}")
        self.session.connection().execute(self._typed(statement),
                                          {"doc": self._encode(events), "now": now})

    # -- encoding -------------------------------------------------------------

    def _typed(self, statement: TextClause) -> TextClause:
        return statement.bindparams(bindparam("now", type_=UTCDateTime()))

    def _json_param(self, name: str) -> str:
        return f":{name}" if self.sqlite else f"CAST(:{name} AS jsonb)"

    def _encode(self, rows: Sequence[dict[str, Any]]) -> str:
        """The rows as one JSON array; times as each dialect stores them."""
        if self.sqlite:  # SQLAlchemy's SQLite DATETIME format: naive UTC
            return orjson.dumps(rows, default=_sqlite_time,
                                option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
        return orjson.dumps(rows).decode()  # ISO 8601 with the offset


def _sqlite_time(value: Any) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"cannot store {type(value).__name__} in a registry row")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class _Rows:
    """A JSON array of objects bound as `:param`, read as a table named `r`."""

    def __init__(self, sqlite: bool, param: str, columns: Sequence[tuple[str, str]]) -> None:
        self.sqlite = sqlite
        self.param = param
        self.columns = columns
        self.alias = f"r_{param}"

    def source(self) -> str:
        if self.sqlite:
            return f"json_each(:{self.param}) AS {self.alias}"
        types = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        return f"json_to_recordset(CAST(:{self.param} AS json)) AS {self.alias}({types})"

    def __getitem__(self, name: str) -> str:
        if self.sqlite:
            return f"json_extract({self.alias}.value, '$.{name}')"
        return f"{self.alias}.{name}"
