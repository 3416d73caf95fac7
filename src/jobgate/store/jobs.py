"""Job and event repository. It flushes; the service owns the commit."""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    FromClause,
    RowMapping,
    Select,
    String,
    Table,
    bindparam,
    column,
    false,
    func,
    or_,
    select,
    text,
    type_coerce,
    union,
    update,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session, raiseload
from sqlalchemy.types import NullType

from jobgate.domain.dependencies import JobRef
from jobgate.domain.job import JobRecord
from jobgate.domain.registry import GATEWAY
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import InvalidSpecError
from jobgate.store.event_horizon import settled_horizon
from jobgate.store.tables import RUNNABLE, Base, JobEventRow, JobRow, JobTagRow

JOBS = Base.metadata.tables["jobs"]
JOB_TAGS = Base.metadata.tables["job_tags"]
JOB_EVENTS = Base.metadata.tables["job_events"]
# PostgreSQL: `count` ids from the jobs' sequence (see JobRepository.new_ids).
_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence('jobs', 'id')) "
                 "FROM generate_series(1, :count)")
# SQLite's planner, without statistics, prefers the (cluster, state, ...) index,
# which walks every held job too.
_RUNNABLE_INDEX = "INDEXED BY ix_jobs_runnable"
# Many jobs' columns by id, in one executemany: the SET clause is the given columns.
_UPDATE_BY_ID = JOBS.update().where(JOBS.c.id == bindparam("job_id_"))
# Ids are BIGINT: a larger one names no job (and the drivers cannot even send it).
MAX_ID = 2**63 - 1
# The columns a JobRecord has a field of the same name for.
_RECORD_COLUMNS = [c.name for c in JOBS.columns if c.name in JobRecord.model_fields]


@dataclass(frozen=True)
class JobFilter:
    states: Sequence[JobState] = ()
    tag: str | None = None
    user_name: str | None = None
    cluster: str | None = None
    partition: str | None = None
    account: str | None = None
    array_job_id: int | None = None  # the tasks of this array
    # Only jobs of this owner or of these projects (a non-admin's view; an
    # owner of None: the projects' jobs only).
    visible_to: tuple[str | None, tuple[str, ...]] | None = None


def visible_clause(visible_to: tuple[str | None, tuple[str, ...]]) -> ColumnElement[bool]:
    owner, projects = visible_to
    clauses = []
    if owner is not None:
        clauses.append(JOBS.c.user_name == owner)
    if projects:
        clauses.append(JOBS.c.project.in_(projects))
    return or_(false(), *clauses)


# -- list pages (GET /v1/jobs) ----------------------------------------------------

# A list page's columns: the JobRecord fields but the spec (only its
# dependencies and qos are shown) and native_id. Typed as nothing: the driver's values
# come as they are and `_decode` converts the few that need it.
_PAGE_COLUMNS = [c for c in JOBS.columns
                 if c.name in JobRecord.model_fields and c.name not in ("spec", "native_id")]
_PAGE_NAMES = [c.name for c in _PAGE_COLUMNS] + ["dependencies", "qos"]
_TIME_COLUMNS = ("submit_time", "start_time", "end_time")
_JSON_COLUMNS = ("allocation", "stats", "registry_data")
_EQUAL_FILTERS = ("user_name", "cluster", "partition", "account", "array_job_id")
# Past this many index walks (states x owner and projects), one walk with OR.
MAX_PAGE_WALKS = 16
# A tag filter's join (job_tags itself is read for each job's tags).
_TAGGED = JOB_TAGS.alias("tagged")


@dataclass(frozen=True)
class PageShape:
    """What a list page's statement depends on; the values are its parameters."""

    tag: bool = False
    equal: tuple[str, ...] = ()  # of _EQUAL_FILTERS
    states: int = 0
    visible: bool = False
    owner: bool = False
    projects: int = 0
    after: bool = False


def page_parameters(filters: JobFilter, limit: int, after_id: int | None
                    ) -> tuple[PageShape, dict[str, Any]]:
    """The shape of a page's statement, and its parameters' values."""
    values: dict[str, Any] = {"limit": limit, "tag": filters.tag, "after": after_id}
    equal = tuple(name for name in _EQUAL_FILTERS if getattr(filters, name) is not None)
    values |= {name: getattr(filters, name) for name in equal}
    states = list(dict.fromkeys(s.value for s in filters.states))
    values |= {f"state_{i}": state for i, state in enumerate(states)}
    owner, projects = filters.visible_to or (None, ())
    projects = tuple(dict.fromkeys(projects))
    values |= {"owner": owner} | {f"project_{i}": p for i, p in enumerate(projects)}
    return PageShape(tag=filters.tag is not None, equal=equal, states=len(states),
                     visible=filters.visible_to is not None, owner=owner is not None,
                     projects=len(projects), after=after_id is not None), values


@functools.lru_cache(maxsize=512)  # built once per shape: building cost as much as running
def page_statement(shape: PageShape, with_tags: bool) -> Select[Any]:
    """The newest `:limit` jobs of a shape's filters below `:after`, newest first;
    `with_tags`: their tags too, as an array (PostgreSQL).

    Each equality a filter makes can walk an index on (that column, id)
    backwards and stop at the page's end. A choice (several states, or a
    non-admin's own jobs or their projects') would make the database read
    every match and sort it; so each alternative walks its own index, `limit`
    ids each, and the page is the newest of those."""
    common: list[ColumnElement[bool]] = [JOBS.c.deleted_at.is_(None)]
    choices: list[list[ColumnElement[bool]]] = []
    key = JOBS.c.id
    if shape.tag:
        common.append(_TAGGED.c.tag == bindparam("tag"))
        key = _TAGGED.c.job_id  # walk the tag's index, not all jobs
    common += [JOBS.c[name] == bindparam(name) for name in shape.equal]
    if shape.states:
        choices.append([JOBS.c.state == bindparam(f"state_{i}") for i in range(shape.states)])
    if shape.visible:
        choices.append(([JOBS.c.user_name == bindparam("owner")] if shape.owner else [])
                       + [JOBS.c.project == bindparam(f"project_{i}")
                          for i in range(shape.projects)] or [false()])
    if shape.after:
        common.append(key < bindparam("after"))
    walks = list(itertools.product(*choices))
    if len(walks) > MAX_PAGE_WALKS:
        walks = [tuple(or_(*choice) for choice in choices)]
    limit: BindParameter[int] = bindparam("limit")

    def newest(*columns: Any, where: Sequence[ColumnElement[bool]]) -> Select[Any]:
        source: FromClause = JOBS
        if shape.tag:
            source = JOBS.join(_TAGGED, _TAGGED.c.job_id == JOBS.c.id)
        return (select(*columns).select_from(source).where(*common, *where)
                .order_by(key.desc()).limit(limit))

    columns: list[Any] = [type_coerce(c, NullType()).label(c.name) for c in _PAGE_COLUMNS]
    columns.append(JOBS.c.spec["dependencies"].as_string().label("dependencies"))
    columns.append(JOBS.c.spec["qos"].as_string().label("qos"))
    if with_tags:  # ARRAY(SELECT ...): a lookup per job, and no second round trip
        columns.append(func.array(
            select(JOB_TAGS.c.tag).where(JOB_TAGS.c.job_id == JOBS.c.id)
            .order_by(JOB_TAGS.c.position).scalar_subquery()).label("tags"))
    if len(walks) == 1:
        return newest(*columns, where=walks[0])
    ids = union(*(newest(key.label("id"), where=walk).subquery().select()
                  for walk in walks)).subquery("ids")
    top = select(ids.c.id).order_by(ids.c.id.desc()).limit(limit).subquery("top")
    return (select(*columns).select_from(JOBS.join(top, top.c.id == JOBS.c.id))
            .order_by(top.c.id.desc()))


# The tags of a page's jobs on SQLite, which has no arrays (and orders no
# aggregate before 3.44): a second statement, in process, cheaper than joining
# them to the page and sorting its wide rows again. The ids go as one JSON
# array: a hundred parameters cost more to render than to run.
_SQLITE_PAGE_TAGS = (
    select(JOB_TAGS.c.job_id, JOB_TAGS.c.tag)
    .where(JOB_TAGS.c.job_id.in_(select(column("value")).select_from(
        func.json_each(bindparam("ids", type_=String)))))
    .order_by(JOB_TAGS.c.job_id, JOB_TAGS.c.position))


def _decode(row: dict[str, Any], sqlite: bool) -> None:
    """The values the columns' types would give: aware UTC times, parsed JSON
    and a bool (SQLite holds naive UTC text, JSON text and 0/1)."""
    for name in _TIME_COLUMNS:
        value = row[name]
        if value is None:
            continue
        if isinstance(value, str):  # (parsed with its offset: 5 times faster than replace)
            row[name] = datetime.fromisoformat(value + "+00:00")
        else:
            row[name] = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if sqlite:
        for name in _JSON_COLUMNS:
            if row[name] is not None:
                # json, as the column type: orjson reads an integer past 64 bits as a float.
                row[name] = json.loads(row[name])
    row["held"] = bool(row["held"])


@dataclass(frozen=True)
class Snapshot:
    """What deciding on a backend's update needs to know of a job."""

    id: int
    state: JobState
    start_time: datetime | None
    requeue_count: int
    deleted: bool = False


@dataclass(frozen=True)
class Change:
    """One write to a job: new column values, and an event when its state moves."""

    job_id: int
    values: dict[str, Any]
    move: tuple[JobState, JobState] | None = None  # (from, to)
    reason: str | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventRecord:
    seq: int
    job_id: int
    at: datetime
    from_state: JobState | None
    to_state: JobState
    reason: str | None
    data: dict[str, Any]


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"j{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a page ended at.

    Raises:
        InvalidSpecError: the cursor was not made by `encode_cursor`.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("j") or not 0 < int(raw[1:]) <= MAX_ID:
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidSpecError("cursor", cursor, "not a cursor this server gave out") from exc


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: JobRow, tags: Sequence[str], at: datetime, reason: str | None) -> JobRow:
        """Insert a job with its tags and its first event."""
        row.tags = [JobTagRow(tag=tag, position=i) for i, tag in enumerate(tags)]
        self.session.add(row)
        self.session.flush()
        self.add_event(row.id, at, None, JobState(row.state), reason, {})
        return row

    def new_ids(self, count: int) -> list[int]:
        """Ids for `count` jobs about to be inserted, taken before the insert so
        that a job's paths (which hold its id) go in with it. SQLite: after the
        largest id, which no other writer can take meanwhile (the transaction
        began IMMEDIATE); PostgreSQL: from the table's sequence."""
        if self.session.get_bind().dialect.name == "sqlite":
            largest = self.session.scalar(select(func.max(JobRow.id))) or 0
            return list(range(largest + 1, largest + 1 + count))
        return list(self.session.scalars(_NEXT_IDS, {"count": count}))

    def insert(self, values: dict[str, Any], tags: Sequence[str], at: datetime,
               reason: str | None) -> int:
        """One job (`values` without its id; its paths as given): its new id."""
        job_id = self.new_ids(1)[0]
        self.insert_many([{**values, "id": job_id}], [tags], at, reason)
        return job_id

    def insert_many(self, values: Sequence[dict[str, Any]], tags: Sequence[Sequence[str]],
                    at: datetime, reason: str | None) -> None:
        """Insert jobs (`values[i]`, with its id from `new_ids`) with their tags
        (`tags[i]`) and first events, in three statements (the submit path: no
        ORM unit of work; executemany, which the drivers send in bulk)."""
        conn = self.session.connection()
        insert_rows(conn, JOBS, values)
        tag_rows = [{"job_id": row["id"], "tag": tag, "position": i}
                    for row, job_tags in zip(values, tags, strict=True)
                    for i, tag in enumerate(job_tags)]
        if tag_rows:
            insert_rows(conn, JOB_TAGS, tag_rows)
        insert_rows(conn, JOB_EVENTS, [
            {"job_id": row["id"], "at": at, "from_state": None, "to_state": row["state"],
             "reason": reason, "data": {}} for row in values])

    def add_many(
        self, rows: Sequence[JobRow], tags: Sequence[str], at: datetime, reason: str | None
    ) -> None:
        """Insert jobs with their tags and first events in two flushes (arrays)."""
        for row in rows:
            row.tags = [JobTagRow(tag=tag, position=i) for i, tag in enumerate(tags)]
        self.session.add_all(rows)
        self.session.flush()
        self.session.add_all([
            JobEventRow(job_id=row.id, at=at, from_state=None, to_state=row.state,
                        reason=reason, data={})
            for row in rows
        ])
        self.session.flush()

    def get(self, job_id: int, *, for_update: bool = False,
            include_deleted: bool = False) -> JobRow | None:
        """A job by id; a deleted one (a tombstone) only with `include_deleted`."""
        if not 0 < job_id <= MAX_ID:
            return None
        query = select(JobRow).where(JobRow.id == job_id)
        if not include_deleted:
            query = query.where(JobRow.deleted_at.is_(None))
        if for_update:
            query = query.with_for_update()
        return self.session.scalars(query).first()

    def page(self, filters: JobFilter, *, limit: int,
             after_id: int | None = None) -> list[JobRecord]:
        """Newest first; `after_id` continues a page that ended at that id.

        Plain rows, not ORM objects: a page of a hundred jobs costs a few
        milliseconds this way, several times less (bench/list_jobs.py)."""
        query = select(JOBS).where(JOBS.c.deleted_at.is_(None))
        newest_first = JOBS.c.id
        if filters.tag is not None:
            # Walk the tag's index backwards and stop at the page's end; an
            # `id IN (all jobs with the tag)` reads every one of them first.
            query = query.join(JOB_TAGS, JOB_TAGS.c.job_id == JOBS.c.id).where(
                JOB_TAGS.c.tag == filters.tag)
            newest_first = JOB_TAGS.c.job_id
        if filters.states:
            query = query.where(JOBS.c.state.in_([s.value for s in filters.states]))
        if filters.user_name is not None:
            query = query.where(JOBS.c.user_name == filters.user_name)
        if filters.cluster is not None:
            query = query.where(JOBS.c.cluster == filters.cluster)
        if filters.partition is not None:
            query = query.where(JOBS.c.partition == filters.partition)
        if filters.account is not None:
            query = query.where(JOBS.c.account == filters.account)
        if filters.array_job_id is not None:
            query = query.where(JOBS.c.array_job_id == filters.array_job_id)
        if filters.visible_to is not None:
            query = query.where(visible_clause(filters.visible_to))
        if after_id is not None:
            query = query.where(newest_first < after_id)
        rows = self.session.execute(query.order_by(newest_first.desc()).limit(limit)).mappings()
        return self._records(rows.all())

    def list_page(self, filters: JobFilter, *, limit: int,
                  after_id: int | None = None) -> list[dict[str, Any]]:
        """`page` as plain values by JobRecord field (no spec: its `dependencies`
        instead), for the list route to encode: read without the columns' Python
        types, which cost more than the query (bench/list_jobs.py). On
        PostgreSQL one statement, which the reader sends alone (autocommit:
        store/db.py make_reader_engine)."""
        sqlite = self.session.get_bind().dialect.name == "sqlite"
        connection = self.session.connection()
        shape, values = page_parameters(filters, limit, after_id)
        names = _PAGE_NAMES if sqlite else [*_PAGE_NAMES, "tags"]
        rows: dict[int, dict[str, Any]] = {}
        for raw in connection.execute(page_statement(shape, not sqlite), values).all():
            row = rows[raw[0]] = dict(zip(names, raw, strict=True))
            _decode(row, sqlite)
        if sqlite and rows:
            for row in rows.values():
                row["tags"] = []
            for job_id, tag in connection.execute(
                    _SQLITE_PAGE_TAGS, {"ids": json.dumps(list(rows))}).all():
                rows[job_id]["tags"].append(tag)
        return list(rows.values())

    def _records(self, rows: Sequence[RowMapping]) -> list[JobRecord]:
        """Records of plain job rows, with their tags (one query for all)."""
        tags: dict[int, list[str]] = {}
        if rows:
            for job_id, tag in self.session.execute(
                select(JOB_TAGS.c.job_id, JOB_TAGS.c.tag)
                .where(JOB_TAGS.c.job_id.in_([row["id"] for row in rows]))
                .order_by(JOB_TAGS.c.job_id, JOB_TAGS.c.position)
            ):
                tags.setdefault(job_id, []).append(tag)
        return [JobRecord.model_validate(
                    {key: row[key] for key in _RECORD_COLUMNS} | {"tags": tags.get(row["id"], [])})
                for row in rows]

    def in_states(self, cluster: str, states: Sequence[JobState], limit: int) -> list[JobRow]:
        """Jobs of a cluster in the given states, highest priority then oldest first
        (without their tags: these are the engine's queries)."""
        query = (
            select(JobRow)
            # Registry jobs are run by another scheduler: never the engine's.
            .where(JobRow.cluster == cluster, JobRow.source == GATEWAY,
                   JobRow.state.in_([s.value for s in states]))
            .order_by(JobRow.priority.desc(), JobRow.id)
            .limit(limit)
            .options(raiseload(JobRow.tags))
        )
        return list(self.session.scalars(query))

    def versions(
        self, cluster: str, states: Sequence[JobState], limit: int
    ) -> list[tuple[int, datetime]]:
        """(id, updated_at) of what `in_states` would load: a cache checks these
        instead of loading rows that have not changed."""
        query = (
            select(JobRow.id, JobRow.updated_at)
            # Registry jobs are run by another scheduler: never the engine's.
            .where(JobRow.cluster == cluster, JobRow.source == GATEWAY,
                   JobRow.state.in_([s.value for s in states]))
            .order_by(JobRow.priority.desc(), JobRow.id)
            .limit(limit)
        )
        return [(job_id, at) for job_id, at in self.session.execute(query)]

    def queue(
        self, cluster: str, limit: int, per_array: int | None = None
    ) -> list[tuple[int, datetime]]:
        """(id, updated_at) of the pending jobs a scheduling round considers, in
        queue order, as this transaction's snapshot has them (nothing is locked:
        the round writes through `unchanged_since`). Held jobs are left out, and
        jobs already handed to a cluster that queues them (with a native id), and
        all but the first `per_array` tasks of each array, so that a large array
        cannot fill the window and starve the jobs behind.
        Without `per_array`, the head of the queue is read straight off the
        queue's index: cheap whatever the number of pending jobs."""
        if per_array is None:
            return self._queue_head(cluster, limit)
        in_queue = (
            select(
                JobRow.id, JobRow.priority,
                func.row_number().over(
                    partition_by=func.coalesce(JobRow.array_job_id, -JobRow.id),
                    order_by=(JobRow.priority.desc(), JobRow.id),
                ).label("place"),
            )
            .where(JobRow.cluster == cluster, JobRow.source == GATEWAY,
                   JobRow.state == JobState.PENDING.value,
                   JobRow.held.is_(False), JobRow.deleted_at.is_(None),
                   JobRow.native_id.is_(None))
            .subquery()
        )
        ids = list(self.session.scalars(
            select(in_queue.c.id).where(in_queue.c.place <= per_array)
            .order_by(in_queue.c.priority.desc(), in_queue.c.id).limit(limit)
        ))
        return self._still_pending(ids)

    def _queue_head(self, cluster: str, limit: int) -> list[tuple[int, datetime]]:
        """The first `limit` of the queue, read in order off the partial index of
        runnable jobs (store/tables.py RUNNABLE, in priority DESC, id order): held
        jobs are not in it at all, and nothing is sorted."""
        return [(job_id, at) for job_id, at in self.session.execute(
            select(JobRow.id, JobRow.updated_at)
            .with_hint(JobRow, _RUNNABLE_INDEX, "sqlite")
            .where(JobRow.cluster == cluster, text(RUNNABLE))
            .order_by(JobRow.priority.desc(), JobRow.id).limit(limit)
        )]

    def _still_pending(self, ids: list[int]) -> list[tuple[int, datetime]]:
        if not ids:
            return []
        found = dict(self.session.execute(
            select(JobRow.id, JobRow.updated_at)
            .where(JobRow.id.in_(ids), JobRow.state == JobState.PENDING.value)
        ).all())
        return [(job_id, found[job_id]) for job_id in ids if job_id in found]

    def unchanged_since(self, versions: Mapping[int, datetime]) -> set[int]:
        """Of the jobs `versions` gives (id -> updated_at as read before), those
        still at that version, locked for this transaction (PostgreSQL, in id
        order; SQLite's BEGIN IMMEDIATE keeps every other writer out already):
        what a round decided from an unlocked read may be written to them."""
        if not versions:
            return set()
        current = self.session.execute(
            select(JobRow.id, JobRow.updated_at).where(JobRow.id.in_(list(versions)))
            .order_by(JobRow.id).with_for_update())
        return {job_id for job_id, at in current if versions[job_id] == at}

    def snapshots(self, ids: Iterable[int]) -> dict[int, Snapshot]:
        """The jobs' states, locked for this transaction (see `queue`)."""
        query = (select(JobRow.id, JobRow.state, JobRow.start_time, JobRow.requeue_count,
                        JobRow.deleted_at)
                 .where(JobRow.id.in_(set(ids))).with_for_update())
        return {job_id: Snapshot(job_id, JobState(state), start, runs, deleted is not None)
                for job_id, state, start, runs, deleted in self.session.execute(query)}

    def apply(self, changes: Sequence[Change], at: datetime) -> None:
        """Write many changes to locked jobs (see `unchanged_since`) in a few statements:
        one executemany per set of columns, one for all the events. Several
        changes of one job (PENDING -> RUNNING -> COMPLETED in one batch) are
        written in their order: the n-th change of each job goes in the n-th wave."""
        waves: list[dict[tuple[str, ...], list[dict[str, Any]]]] = []
        changes_of: dict[int, int] = {}
        events = []
        for change in changes:
            wave = changes_of.get(change.job_id, 0)
            changes_of[change.job_id] = wave + 1
            if wave == len(waves):
                waves.append({})
            values = {**change.values, "updated_at": at}
            if change.move is not None:
                values |= {"state": change.move[1].value, "state_reason": change.reason}
                events.append({
                    "job_id": change.job_id, "at": at, "from_state": change.move[0].value,
                    "to_state": change.move[1].value, "reason": change.reason,
                    "data": change.data or {},
                })
            waves[wave].setdefault(tuple(sorted(values)), []).append(
                {"job_id_": change.job_id, **values})
        # Core statements: the ORM's bulk update by primary key costs several
        # times more Python for the same executemany (the engine's rounds).
        for by_columns in waves:
            for rows in by_columns.values():
                self.session.execute(_UPDATE_BY_ID, rows)
        if events:
            insert_rows(self.session.connection(), JOB_EVENTS, events)

    def get_many(self, ids: Iterable[int]) -> dict[int, JobRow]:
        """Jobs by id (without their tags), not locked (see `queue`)."""
        query = (select(JobRow).where(JobRow.id.in_(set(ids)))
                 .options(raiseload(JobRow.tags)))
        return {row.id: row for row in self.session.scalars(query)}

    def transition(
        self,
        job_id: int,
        expected: JobState,
        new: JobState,
        at: datetime,
        *,
        reason: str | None = None,
        values: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Move a job from `expected` to `new` and log the event, atomically.

        Compare-and-set on the state: returns False, changing nothing, when the
        job is no longer in `expected` (someone else moved it first).
        """
        changes = {"state": new.value, "state_reason": reason, "updated_at": at} | (values or {})
        result = self.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state == expected.value)
            .values(**changes)
            .execution_options(synchronize_session="fetch")
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        self.add_event(job_id, at, expected, new, reason, data or {})
        return True

    def change(
        self, row: JobRow, at: datetime, reason: str | None, values: dict[str, Any],
        data: dict[str, Any],
    ) -> None:
        """Change a job's fields without moving its state, and log it as an event."""
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = at
        state = JobState(row.state)
        self.add_event(row.id, at, state, state, reason, data)

    def working_directories(self, ids: Iterable[int]) -> dict[int, str]:
        """The working directories of jobs, deleted ones too."""
        query = select(JobRow.id, JobRow.working_directory).where(JobRow.id.in_(set(ids)))
        return {job_id: path for job_id, path in self.session.execute(query)}

    def tombstone(self, row: JobRow, at: datetime, reason: str) -> None:
        """Mark a job deleted, and log it as its last event (the `deleted` event)."""
        row.deleted_at = at
        row.updated_at = at
        state = JobState(row.state)
        self.add_event(row.id, at, state, state, reason, {"verb": "delete", "deleted": True})

    def add_event(
        self,
        job_id: int,
        at: datetime,
        from_state: JobState | None,
        to_state: JobState,
        reason: str | None,
        data: dict[str, Any],
    ) -> None:
        self.session.add(JobEventRow(
            job_id=job_id, at=at, from_state=from_state.value if from_state else None,
            to_state=to_state.value, reason=reason, data=data,
        ))

    def events_after(
        self, after_seq: int, *, limit: int, job_id: int | None = None,
        user_name: str | None = None, states: Sequence[JobState] = (),
        visible_to: tuple[str | None, tuple[str, ...]] | None = None,
    ) -> list[EventRecord]:
        """The log after `after_seq`, oldest first, filtered by job, owner and new state."""
        if after_seq >= MAX_ID or (job_id is not None and not 0 < job_id <= MAX_ID):
            return []
        query = select(JobEventRow).where(JobEventRow.seq > after_seq)
        horizon = settled_horizon(self.session, after_seq)
        if horizon is not None:
            query = query.where(JobEventRow.seq <= horizon)
        if job_id is not None:
            query = query.where(JobEventRow.job_id == job_id)
        if user_name is not None or visible_to is not None:
            query = query.join(JobRow, JobRow.id == JobEventRow.job_id)
        if user_name is not None:
            query = query.where(JobRow.user_name == user_name)
        if visible_to is not None:
            query = query.where(visible_clause(visible_to))
        if states:
            query = query.where(JobEventRow.to_state.in_([s.value for s in states]))
        return [_event(row) for row in
                self.session.scalars(query.order_by(JobEventRow.seq).limit(limit))]

    def events(self, job_id: int, *, after_seq: int = 0, limit: int = 1000) -> list[EventRecord]:
        return self.events_after(after_seq, limit=limit, job_id=job_id)


def cluster_load(session: Session, cluster: str) -> tuple[dict[str, int], int]:
    """Jobs of a cluster by active state, and the CPUs its started jobs hold."""
    active = [s.value for s in (JobState.PENDING, JobState.RUNNING, JobState.SUSPENDED,
                                JobState.COMPLETING)]
    counts = dict(session.execute(
        select(JobRow.state, func.count()).where(JobRow.cluster == cluster,
                                                 JobRow.state.in_(active))
        .group_by(JobRow.state)).all())
    cpus = session.scalar(
        select(func.coalesce(func.sum(JobRow.ntasks * JobRow.cpus_per_task), 0)).where(
            JobRow.cluster == cluster, JobRow.state.in_(active[1:]))) or 0
    return counts, int(cpus)


def ledger_summary(session: Session) -> tuple[list[tuple[str, str, int]], datetime | None]:
    """(cluster, state, count) of every job, and when the newest event happened."""
    counts = [(cluster, state, count) for cluster, state, count in session.execute(
        select(JobRow.cluster, JobRow.state, func.count()).where(JobRow.deleted_at.is_(None))
        .group_by(JobRow.cluster, JobRow.state))]
    return counts, session.scalar(select(func.max(JobEventRow.at)))


def _event(row: JobEventRow) -> EventRecord:
    return EventRecord(
        seq=row.seq, job_id=row.job_id, at=row.at,
        from_state=JobState(row.from_state) if row.from_state else None,
        to_state=JobState(row.to_state), reason=row.reason, data=row.data,
    )


def states_of_refs(session: Session, refs: Iterable[JobRef]) -> dict[JobRef, list[JobState]]:
    """The states each reference stands for: a job's own, every task of an array
    job, or one task. Unknown references are left out."""
    refs = set(refs)
    ids = {ref.job_id for ref in refs if 0 < ref.job_id <= MAX_ID}
    if not ids:
        return {}
    rows = session.execute(
        select(JobRow.id, JobRow.array_job_id, JobRow.array_task_id, JobRow.state).where(
            or_(JobRow.id.in_(ids), JobRow.array_job_id.in_(ids))
        )
    ).all()
    found: dict[JobRef, list[JobState]] = {}
    for ref in refs:
        if ref.task is not None:
            states = [r.state for r in rows
                      if r.array_job_id == ref.job_id and r.array_task_id == ref.task]
        else:
            tasks = [r.state for r in rows if r.array_job_id == ref.job_id]
            states = tasks or [r.state for r in rows if r.id == ref.job_id]
        if states:
            found[ref] = [JobState(s) for s in states]
    return found


def values_to_record(values: dict[str, Any], tags: Sequence[str],
                     spec: JobSpec | None = None) -> JobRecord:
    """The domain view of a job just inserted from `values` (all its columns
    that have a value, with its id): what `to_record` would make of its row.
    `spec`, when given, is the spec its `spec` column was dumped from: taken as
    it is rather than validated again from the dump."""
    fields = {key: values.get(key) for key in _RECORD_COLUMNS} | {"tags": list(tags)}
    if spec is not None:
        fields["spec"] = spec
    return JobRecord.model_validate(fields)


def to_record(row: JobRow, *, with_tags: bool = True) -> JobRecord:
    """The domain view of a ledger row (`with_tags=False` for rows loaded without)."""
    return JobRecord(
        id=row.id, name=row.name, state=JobState(row.state), state_reason=row.state_reason,
        held=row.held, user_name=row.user_name, cluster=row.cluster, partition=row.partition,
        account=row.account, num_nodes=row.num_nodes, ntasks=row.ntasks,
        cpus_per_task=row.cpus_per_task, memory=row.memory, memory_per_cpu=row.memory_per_cpu,
        gpus=row.gpus, time_limit=row.time_limit, priority=row.priority,
        tags=[t.tag for t in row.tags] if with_tags else [], comment=row.comment,
        working_directory=row.working_directory, standard_output=row.standard_output,
        standard_error=row.standard_error, submit_time=row.submit_time,
        start_time=row.start_time, end_time=row.end_time, exit_code=row.exit_code,
        exit_code_signal=row.exit_code_signal, requeue_count=row.requeue_count,
        native_id=row.native_id, spec=JobSpec.model_validate(row.spec),
        array_job_id=row.array_job_id, array_task_id=row.array_task_id,
        allocation=row.allocation, stats=row.stats, source=row.source, project=row.project,
        registry_data=row.registry_data,
    )


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """`conn.execute(table.insert(), rows)` for rows that all have the same keys,
    with less Python: each column's bind processor is applied in one pass and the
    driver's executemany gets the rows as they are sent (a batch of 1,000 jobs
    spent more in SQLAlchemy's per-row parameter handling than in the database).
    Rows that leave out a column with a Python-side default go the usual way,
    which fills it in."""
    if not rows:
        return
    sql, names, processors = _raw_insert(conn.dialect, table, tuple(rows[0]))
    if sql is None:
        conn.execute(table.insert(), list(rows))
        return
    columns = [_bound_column(rows, name, proc) for name, proc in zip(names, processors,
                                                                        strict=True)]
    if conn.dialect.positional:
        params: list[Any] = list(zip(*columns, strict=True))
    else:
        params = [dict(zip(names, values, strict=True))
                  for values in zip(*columns, strict=True)]
    conn.exec_driver_sql(sql, params)


def _bound_column(rows: Sequence[dict[str, Any]], name: str, proc: Any) -> list[Any]:
    """One column's values as the driver takes them. A value that is the same
    object as the row before's is not processed again: a batch's jobs share
    their submit time, which costs a strftime a row otherwise."""
    if proc is None:
        return [row[name] for row in rows]
    values, last, out = [], object(), None
    for row in rows:
        value = row[name]
        if value is not last:
            last, out = value, proc(value)
        values.append(out)
    return values


@functools.lru_cache(maxsize=32)
def _raw_insert(dialect: Dialect, table: Table, keys: tuple[str, ...]
                ) -> tuple[str | None, tuple[str, ...], tuple[Any, ...]]:
    """The INSERT of `keys` into `table` as the driver takes it: its SQL, its
    parameter names in the order sent, and each one's bind processor (None:
    the value goes as it is). No SQL when a column left out has a default."""
    if any(column.default is not None and column.key not in keys for column in table.columns):
        return None, (), ()
    compiled = table.insert().compile(dialect=dialect, column_keys=list(keys),
                                      for_executemany=True)
    names = tuple(compiled.positiontup or ()) if dialect.positional else keys
    processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                       for name in names)
    return compiled.string, names, processors
