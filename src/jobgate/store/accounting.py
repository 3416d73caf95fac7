"""Accounting over the ledger: one GROUP BY query, on SQLite and PostgreSQL alike.

Durations are whole seconds per job, truncated as `JobRecord.run_time` does, so
that a group's sums equal the sums of its jobs' figures in the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    SQLColumnExpression,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from jobgate.domain.accounting import GroupBy, Usage
from jobgate.store.tables import JobRow
from jobgate.store.types import UTCDateTime


class whole_seconds(FunctionElement[int]):
    """Whole seconds from the first timestamp to the second (truncated; may be negative)."""

    type = BigInteger()
    inherit_cache = True
    name = "whole_seconds"


@compiles(whole_seconds)
def _whole_seconds_postgresql(element: whole_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    earlier, later = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(TRUNC(EXTRACT(EPOCH FROM ({later} - {earlier}))) AS BIGINT)"


@compiles(whole_seconds, "sqlite")
def _whole_seconds_sqlite(element: whole_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds the store's times as naive UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    # Its date functions round to the millisecond (and julianday is a double), so
    # whole seconds and microseconds are taken apart and subtracted as integers.
    earlier, later = (compiler.process(arg, **kw) for arg in element.clauses)

    def micros(value: str) -> str:
        return (f"(CAST(strftime('%s', substr({value}, 1, 19)) AS INTEGER) * 1000000"
                f" + CAST(substr({value}, 21) AS INTEGER))")

    # Integer division truncates towards zero, as int() of a timedelta's seconds does.
    return f"(({micros(later)} - {micros(earlier)}) / 1000000)"


class utc_day(FunctionElement[str]):
    """The UTC calendar day of a timestamp, as YYYY-MM-DD."""

    inherit_cache = True
    name = "utc_day"


@compiles(utc_day)
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"to_char({value} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds the store's times as naive UTC text.
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"date({value})"


def _group_key(group_by: GroupBy) -> SQLColumnExpression[Any]:
    return {
        # A job's project; a job in none (a registry job, a user in no project):
        # its account, which is what Slurm charges.
        GroupBy.PROJECT: func.coalesce(JobRow.project, JobRow.account),
        GroupBy.USER: JobRow.user_name,
        GroupBy.CLUSTER: JobRow.cluster,
        GroupBy.PARTITION: JobRow.partition,
        GroupBy.STATE: JobRow.state,
        GroupBy.DAY: utc_day(JobRow.submit_time),
    }[group_by]


def _not_negative(seconds: ColumnElement[int]) -> ColumnElement[int]:
    # Records pushed from outside may end before they start: such a span counts 0.
    return case((seconds > 0, seconds), else_=0)


def usage_by(
    session: Session, group_by: GroupBy, *, now: datetime, since: datetime | None = None,
    until: datetime | None = None, user_name: str | None = None,
) -> list[Usage]:
    """Usage per group of the jobs submitted in [since, until) (of one user, if
    given), running jobs counted up to `now`; ordered by key, no key last."""
    at_now = literal(now, UTCDateTime())
    cpus = JobRow.ntasks * JobRow.cpus_per_task
    run = case(
        (JobRow.start_time.is_(None), 0),
        else_=_not_negative(whole_seconds(JobRow.start_time,
                                          func.coalesce(JobRow.end_time, at_now))),
    )
    # A job that never started waited until it ended (cancelled), or waits still.
    queued = _not_negative(whole_seconds(
        JobRow.submit_time, func.coalesce(JobRow.start_time, JobRow.end_time, at_now)))
    memory = func.coalesce(JobRow.memory, JobRow.memory_per_cpu * cpus, 0)
    key: ColumnElement[Any] = _group_key(group_by).label("key")

    def total(value: SQLColumnExpression[Any]) -> ColumnElement[int]:
        return cast(func.coalesce(func.sum(value), 0), BigInteger)

    query = select(
        key, func.count().label("count"), total(cpus), total(memory), total(JobRow.ntasks),
        total(run * cpus), total(run), total(queued),
    ).group_by(key).order_by(key.is_(None), key)
    if since is not None:
        query = query.where(JobRow.submit_time >= since)
    if until is not None:
        query = query.where(JobRow.submit_time < until)
    if user_name is not None:
        query = query.where(JobRow.user_name == user_name)
    return [
        Usage(key=None if row[0] is None else str(row[0]), count=row[1], cpus=row[2],
              memory=row[3], ntasks=row[4], elapsed_cpu_time=row[5], wall_time=row[6],
              queue_time=row[7])
        for row in session.execute(query)
    ]
