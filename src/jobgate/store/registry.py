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

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, TextClause, bindparam, text
from sqlalchemy.orm import Session

from jobgate.domain.registry import REGISTRY
from jobgate.store.types import JsonDoc, UTCDateTime

# The columns a registry record decides, with their PostgreSQL types.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("native_id", "text"), ("array_job_id", "bigint"), ("array_task_id", "integer"),
    ("name", "text"), ("cluster", "text"), ("partition", "text"), ("account", "text"),
    ("user_name", "text"), ("state", "text"), ("state_reason", "text"), ("held", "boolean"),
    ("num_nodes", "integer"), ("ntasks", "integer"), ("cpus_per_task", "integer"),
    ("memory", "integer"), ("gpus", "integer"), ("time_limit", "integer"),
    ("working_directory", "text"), ("submit_time", "timestamptz"),
    ("start_time", "timestamptz"), ("end_time", "timestamptz"), ("registry_data", "jsonb"),
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
    columns: dict[str, Any]


class RegistryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.sqlite = session.get_bind().dialect.name == "sqlite"

    # -- statements -----------------------------------------------------------

    def find(self, keys: Sequence[dict[str, Any]]) -> list[Stored]:
        """The registry jobs that any of `keys` (cluster, native_id, array_job_id,
        array_task_id) names, by either key, locked for this transaction."""
        if not keys:
            return []
        rows = _Rows(self.sqlite, "keys", [(name, dict(COLUMNS)[name]) for name in _KEY])
        by_native = (f"SELECT j.id FROM jobs AS j JOIN {rows.source()} ON "
                     f"j.cluster = {rows['cluster']} AND j.native_id = {rows['native_id']} "
                     f"WHERE j.source = '{REGISTRY}'")
        by_array = (f"SELECT j.id FROM jobs AS j JOIN {rows.source()} ON "
                    f"j.cluster = {rows['cluster']} AND j.array_job_id = {rows['array_job_id']}"
                    f" AND j.array_task_id = {rows['array_task_id']} "
                    f"WHERE j.source = '{REGISTRY}'")
        lock = "" if self.sqlite else " FOR UPDATE"  # SQLite: BEGIN IMMEDIATE did
        query = (text(f"SELECT id, requeue_count, {', '.join(NAMES)} FROM jobs WHERE id IN "
                      f"({by_native} UNION ALL {by_array}) ORDER BY id{lock}")
                 .columns(**{name: UTCDateTime() for name in TIMES}, held=Boolean(),
                          registry_data=JsonDoc))
        result = self.session.connection().execute(query, {"keys": self._encode(keys)})
        return [Stored(row[0], row[1], dict(zip(NAMES, row[2:], strict=True)))
                for row in result]

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
            "doc": self._encode(rows), "spec": json.dumps(REGISTRY_SPEC), "now": now})
        return [tuple(row) for row in result]

    def update(self, rows: Sequence[dict[str, Any]], now: datetime) -> None:
        """Overwrite jobs by id with their new decided columns and requeue_count."""
        if not rows:
            return
        columns = (("id", "bigint"), *COLUMNS, ("requeue_count", "integer"))
        source = _Rows(self.sqlite, "doc", columns)
        assignments = ", ".join(f"{name} = {source[name]}"
                                for name, _ in columns if name != "id")
        target = "jobs" if self.sqlite else "jobs AS j"
        job_id = "jobs.id" if self.sqlite else "j.id"
        statement = text(f"UPDATE {target} SET {assignments}, updated_at = :now "
                         f"FROM {source.source()} WHERE {job_id} = {source['id']}")
        self.session.connection().execute(self._typed(statement),
                                          {"doc": self._encode(rows), "now": now})

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
        return json.dumps(rows, default=self._time, separators=(",", ":"))

    def _time(self, value: Any) -> str:
        if not isinstance(value, datetime):
            raise TypeError(f"cannot store {type(value).__name__} in a registry row")
        utc: datetime = value.astimezone(UTC)
        if self.sqlite:  # SQLAlchemy's SQLite DATETIME format, naive UTC
            return utc.strftime("%Y-%m-%d %H:%M:%S.%f")
        return utc.isoformat()


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
        return f"jsonb_to_recordset(CAST(:{self.param} AS jsonb)) AS {self.alias}({types})"

    def __getitem__(self, name: str) -> str:
        if self.sqlite:
            return f"json_extract({self.alias}.value, '$.{name}')"
        return f"{self.alias}.{name}"
