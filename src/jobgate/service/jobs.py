"""JobService: validate, authorize, persist and commit; the one way jobs change."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from jobgate.backends.base import Backend
from jobgate.config import PartitionConfig, Settings
from jobgate.domain.arrays import parse_array
from jobgate.domain.dependencies import parse_dependencies
from jobgate.domain.job import JobRecord, JobUpdate
from jobgate.domain.output import DEFAULT_STDERR, DEFAULT_STDOUT, expand_output_pattern
from jobgate.domain.parsing import format_duration
from jobgate.domain.registry import GATEWAY, REGISTRY
from jobgate.domain.spec import JobSpec, job_memory, resolve_spec
from jobgate.domain.states import JobState, can_transition
from jobgate.errors import (
    ConflictError,
    InvalidSpecError,
    UnsupportedError,
    VerbNotSupportedError,
)
from jobgate.service.access import require_actable, require_visible
from jobgate.service.auth import Principal
from jobgate.service.group_commit import GroupCommit
from jobgate.store.jobs import (
    Change,
    EventRecord,
    JobFilter,
    JobRepository,
    Snapshot,
    decode_cursor,
    encode_cursor,
    states_of_refs,
    to_record,
    values_to_record,
)
from jobgate.store.tables import JobRow

log = logging.getLogger(__name__)

MAX_PAGE = 1000
MAX_BATCH = 1000
MAX_OUTPUT_CHUNK = 4 * 1024 * 1024

# The columns `JobService.paths` reads.
_PATHS_READ = ("id", "cluster", "name", "user_name", "array_job_id", "array_task_id")


# A validated plain submission: the spec, its cluster and partition, and who sent it.
Submission = tuple[JobSpec, str, str, Principal]


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        backends: Mapping[str, Backend],
        wake_engine: Callable[..., None] = lambda *_: None,
        readers: sessionmaker[Session] | None = None,
    ) -> None:
        self.sessions = sessions
        # For what only reads (store/db.py make_reader_engine).
        self.readers = readers or sessions
        self.settings = settings
        self.backends = backends
        self._resolved_parents: dict[str, str] = {}
        self.wake_engine = wake_engine
        # Told the ids of deleted jobs that have just ended (a forced delete of
        # an active job), whose files can go now (see service/deletion.py).
        self.on_deleted_ended: Callable[[list[int]], None] = lambda _ids: None
        # Project rules on a validated spec (service/access.py SubmitRules).
        self.authorize: Callable[[JobSpec, str, str, Principal], JobSpec] = \
            lambda spec, *_: spec
        self._group_commit: GroupCommit[Submission, JobRecord] = GroupCommit(self._commit_plain)

    # -- submit ---------------------------------------------------------------

    def submit(
        self, spec: JobSpec, user: Principal,
        on_record: Callable[[Session, JobRecord], None] | None = None,
    ) -> JobRecord:
        """Validate a request against the cluster, record it PENDING and commit.
        An array becomes one job per task; the first task is returned.

        Raises:
            InvalidSpecError: a bad value, an unknown cluster, partition or
                dependency, or a value past the partition's limits.
            UnsupportedError: the cluster cannot run what is asked (yet).

        `on_record` runs inside the transaction, once the job is written: what it
        writes commits with the job, or not at all.
        """
        spec, cluster, partition = self.checked(spec, user)
        if on_record is None and not spec.array and not spec.dependencies:
            return self._group_commit.run((spec, cluster, partition, user))
        with self.sessions.begin() as session:
            record = self._write(session, spec, cluster, partition, user, utcnow())
            if on_record is not None:
                on_record(session, record)
        # The engine need not load again the job it is handed here; a held job
        # waits for its release, which wakes the engine itself.
        if not spec.hold:
            self.wake_engine([] if spec.array else [record])
        return record

    def _commit_plain(self, items: Sequence[Submission]) -> list[JobRecord]:
        """Plain jobs of several callers in one transaction (service/group_commit.py)."""
        now = utcnow()
        records: list[JobRecord] = []
        with self.sessions.begin() as session:
            for _, run in itertools.groupby(
                    items, key=lambda item: (item[3].name, item[3].actor)):
                same_user = list(run)
                records += self._insert_plain(
                    session, [(spec, cluster, partition)
                              for spec, cluster, partition, _ in same_user],
                    same_user[0][3], now)
        # A held job waits for its release, which wakes the engine itself.
        runnable = [record for record in records if not record.held]
        if runnable:
            self.wake_engine(runnable)
        return records

    def submit_many(self, specs: Sequence[JobSpec], user: Principal) -> list[JobRecord]:
        """Submit several jobs in one transaction: all of them, or none.

        Raises:
            InvalidSpecError: naming the job (`jobs[i].field`) and what to fix.
            UnsupportedError: naming the job.
        """
        if not 1 <= len(specs) <= MAX_BATCH:
            raise InvalidSpecError("jobs", len(specs), f"send 1 to {MAX_BATCH} jobs")
        checked = []
        for index, spec in enumerate(specs):
            try:
                checked.append(self.checked(spec, user))
            except InvalidSpecError as exc:
                raise InvalidSpecError(f"jobs[{index}].{exc.field}", exc.value,
                                       exc.reason) from exc
            except UnsupportedError as exc:
                raise UnsupportedError(f"jobs[{index}]: {exc.message}",
                                       details=exc.details) from exc
        now = utcnow()
        with self.sessions.begin() as session:
            records = self._write_many(session, checked, user, now)
        if any(not spec.hold for spec, _, _ in checked):
            self.wake_engine([r for r, (spec, _, _) in zip(records, checked, strict=True)
                              if not spec.array and not spec.hold])
        return records

    def _write_many(self, session: Session, checked: Sequence[tuple[JobSpec, str, str]],
                    user: Principal, now: datetime) -> list[JobRecord]:
        """Write validated requests in order: each run of plain jobs in a few
        multi-row statements (not several statements a job), the others as `_write`."""
        records: list[JobRecord] = []
        plain: list[tuple[JobSpec, str, str]] = []
        for spec, cluster, partition in checked:
            if spec.array or spec.dependencies:
                # What comes before it is written first: it may depend on those.
                records += self._insert_plain(session, plain, user, now)
                plain = []
                records.append(self._write(session, spec, cluster, partition, user, now))
            else:
                plain.append((spec, cluster, partition))
        records += self._insert_plain(session, plain, user, now)
        return records

    def _write(self, session: Session, spec: JobSpec, cluster: str, partition: str,
               user: Principal, now: datetime) -> JobRecord:
        """Write one validated request (an array: all its tasks); returns the first."""
        tasks = parse_array(spec.array).indices if spec.array else None
        if spec.dependencies:
            check_dependencies_exist(session, spec.dependencies)
        if not tasks:
            return self._insert_plain(session, [(spec, cluster, partition)], user, now)[0]

        def new_row(task: int | None, array_job_id: int | None) -> JobRow:
            return JobRow(**job_values(spec, cluster, partition, user.name, now,
                                       task=task, array_job_id=array_job_id))

        repo = JobRepository(session)
        reason = submit_reason(user)
        first = new_row(tasks[0], None)
        repo.add(first, spec.tags, now, reason)
        # Slurm's ArrayJobId is the id of the first task.
        first.array_job_id = first.id
        rows = [first, *(new_row(task, first.id) for task in tasks[1:])]
        repo.add_many(rows[1:], spec.tags, now, reason)
        for row in rows:  # paths need the ids, which the inserts just gave
            self.place(row, spec)
        session.flush()
        return to_record(first)

    def _insert_plain(self, session: Session, items: Sequence[tuple[JobSpec, str, str]],
                      user: Principal, now: datetime) -> list[JobRecord]:
        """Jobs that are not arrays, in plain statements (no ORM unit of work):
        their ids first, then the jobs with their paths (which hold the ids), tags
        and events in three inserts, whatever the number of jobs."""
        if not items:
            return []
        repo = JobRepository(session)
        rows = [job_values(spec, cluster, partition, user.name, now)
                for spec, cluster, partition in items]
        resolved: dict[str, str] = {}  # a batch's jobs share their parent directory
        for job_id, row, (spec, _, _) in zip(repo.new_ids(len(rows)), rows, items, strict=True):
            row["id"] = job_id
            row.update(self.paths(spec, row, resolved))
        tags = [spec.tags for spec, _, _ in items]
        repo.insert_many(rows, tags, now, submit_reason(user))
        return [values_to_record(row, spec.tags, spec) for row, (spec, _, _) in
                zip(rows, items, strict=True)]

    def validate(self, spec: JobSpec) -> tuple[JobSpec, str, str]:
        """The spec with its directives applied, its cluster and its partition.

        Raises:
            InvalidSpecError: a bad value, an unknown cluster or partition.
            UnsupportedError: the cluster cannot run what is asked (yet).
        """
        spec = resolve_spec(spec)
        cluster = spec.cluster or self.settings.default_cluster
        config = self.settings.clusters.get(cluster)
        if config is None or cluster not in self.backends:
            raise InvalidSpecError("cluster", cluster,
                                   f"no such cluster; known: {', '.join(self.backends)}")
        # The backend knows the partitions: configured, or read from the cluster.
        partitions = self.backends[cluster].partitions()
        partition = spec.partition or next(
            (p.name for p in partitions if p.default), partitions[0].name if partitions else "")
        limits = next((p for p in partitions if p.name == partition), None)
        if limits is None:
            known = ", ".join(p.name for p in partitions)
            raise InvalidSpecError("partition", partition,
                                   f"no such partition on {cluster}; known: {known}")
        spec = apply_partition_limits(spec, limits)
        self.backends[cluster].check(spec)
        return spec, cluster, partition

    def checked(self, spec: JobSpec, user: Principal) -> tuple[JobSpec, str, str]:
        """`validate`, then the project rules for `user`.

        Raises:
            InvalidSpecError, UnsupportedError: as `validate`; also a project to name.
            PermissionDeniedError: a project, cluster or partition the user may not use.
        """
        spec, cluster, partition = self.validate(spec)
        return self.authorize(spec, cluster, partition, user), cluster, partition

    def place(self, row: JobRow, spec: JobSpec) -> None:
        """Set the job's working directory and output files (the row has its id)."""
        job = {key: getattr(row, key) for key in _PATHS_READ}
        for key, value in self.paths(spec, job).items():
            setattr(row, key, value)

    def paths(self, spec: JobSpec, job: Mapping[str, Any],
              resolved: dict[str, str] | None = None) -> dict[str, str]:
        """The working directory and output files of a job (`job`: its columns,
        with its id), by column; `resolved` keeps the parent directories resolved
        for a job of a batch, for the next."""
        backend = self.backends[job["cluster"]]
        if spec.working_directory is None:
            workdir = self._default_directory(backend.default_working_directory(job["id"]))
        else:
            workdir = resolve_path(spec.working_directory, resolved)
        paths = {"working_directory": workdir}
        # As sbatch: errors go where --output says unless --error says otherwise
        # (jobgate's default keeps them apart when neither is given).
        stderr = spec.stderr or spec.stdout or DEFAULT_STDERR
        for key, pattern in (("standard_output", spec.stdout or DEFAULT_STDOUT),
                             ("standard_error", stderr)):
            paths[key] = expand_output_pattern(
                pattern, job_id=job["id"], name=job["name"], user=job["user_name"],
                working_directory=workdir, array_job_id=job["array_job_id"],
                array_task_id=job["array_task_id"])
        return paths

    def _default_directory(self, path: str) -> str:
        """A backend's directory for a job, resolved: its parent once for good
        (the gateway's own, which does not move), and its last part, the job's
        id, taken as it is (the gateway makes it when the job starts)."""
        parent, name = os.path.split(path)
        resolved = self._resolved_parents.get(parent)
        if resolved is None:
            resolved = self._resolved_parents[parent] = str(Path(parent).resolve())
        return os.path.join(resolved, name)

    # -- read -----------------------------------------------------------------

    def get(self, job_id: int, user: Principal) -> JobRecord:
        """Raises:
        NotFoundError: no such job, or not one the caller may see.
        """
        with self.readers() as session:
            return to_record(self.visible_row(session, job_id, user))

    def list_jobs(
        self, filters: JobFilter, user: Principal, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """A page of jobs, newest first, and the cursor of the next page (None at the end).

        Raises:
            InvalidSpecError: a bad limit or cursor.
        """
        narrowed = self._list_filters(filters, user, limit)
        if narrowed is None:
            return [], None
        after_id = decode_cursor(cursor) if cursor else None
        with self.readers() as session:
            rows = JobRepository(session).page(narrowed, limit=limit + 1, after_id=after_id)
        records = rows[:limit]
        next_cursor = encode_cursor(records[-1].id) if len(rows) > limit else None
        return records, next_cursor

    def list_page(
        self, filters: JobFilter, user: Principal, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """`list_jobs` as plain values by field (store/jobs.py JobRepository.list_page),
        which the list route writes as JSON without making records of them.

        Raises:
            InvalidSpecError: a bad limit or cursor.
        """
        narrowed = self._list_filters(filters, user, limit)
        if narrowed is None:
            return [], None
        after_id = decode_cursor(cursor) if cursor else None
        with self.readers() as session:
            rows = JobRepository(session).list_page(narrowed, limit=limit + 1, after_id=after_id)
        next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
        return rows[:limit], next_cursor

    def _list_filters(self, filters: JobFilter, user: Principal, limit: int
                      ) -> JobFilter | None:
        """`filters` narrowed to what `user` may see (None: nothing).

        Raises:
            InvalidSpecError: a bad limit.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidSpecError("limit", limit, f"must be between 1 and {MAX_PAGE}")
        return filters if user.is_admin else visible_filter(filters, user)

    def events(self, job_id: int, user: Principal, *, after_seq: int = 0) -> list[EventRecord]:
        """Raises:
        NotFoundError: no such job, or not one the caller may see.
        """
        with self.readers() as session:
            self.visible_row(session, job_id, user)
            return JobRepository(session).events(job_id, after_seq=after_seq)

    def script(self, job_id: int, user: Principal) -> str:
        """The batch script the job runs (a command is shown as the script that
        runs it, as `sbatch --wrap` does).

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            VerbNotSupportedError: a registry job (its scheduler kept the script).
        """
        job = self.get(job_id, user)
        refuse_registry(job, "script")
        spec = job.spec
        if spec.script is not None:
            return spec.script
        return f"#!/bin/bash\n# This script was made from a command.\n{spec.command}\n"

    def events_since(
        self, user: Principal, after_seq: int, *, limit: int = 500, job_id: int | None = None,
        user_name: str | None = None, states: Sequence[JobState] = (),
    ) -> list[EventRecord]:
        """The event log after `after_seq` that the caller may see (a user: the
        events of their own jobs; an admin: all, or one user's).

        Raises:
            InvalidSpecError: a bad limit.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidSpecError("limit", limit, f"must be between 1 and {MAX_PAGE}")
        visible_to = None
        if not user.is_admin:
            seen = visible_filter(JobFilter(), user)
            if seen is None:
                return []
            visible_to = seen.visible_to
        with self.readers() as session:
            return JobRepository(session).events_after(
                after_seq, limit=limit, job_id=job_id, user_name=user_name, states=states,
                visible_to=visible_to)

    def read_output(
        self, job_id: int, user: Principal, stream: Literal["stdout", "stderr"],
        *, offset: int = 0, limit: int = MAX_OUTPUT_CHUNK,
    ) -> bytes:
        """Bytes of a job's stdout or stderr from `offset` (empty until written).

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            InvalidSpecError: a negative offset or a bad limit.
            VerbNotSupportedError: a registry job (its files are not jobgate's to serve).
        """
        if offset < 0:
            raise InvalidSpecError("offset", offset, "must be 0 or more")
        if not 1 <= limit <= MAX_OUTPUT_CHUNK:
            raise InvalidSpecError("limit", limit, f"must be between 1 and {MAX_OUTPUT_CHUNK}")
        job = self.get(job_id, user)
        refuse_registry(job, stream)
        path = Path(job.standard_output if stream == "stdout" else job.standard_error)
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                return handle.read(limit)
        except FileNotFoundError:
            return b""

    # -- control --------------------------------------------------------------

    def cancel(self, job_id: int, user: Principal) -> JobRecord:
        """Cancel a pending job at once, or ask the cluster to stop a started one.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            ConflictError: the job has already ended.
        """
        with self.sessions.begin() as session:
            row = self.visible_row(session, job_id, user)
            require_actable(row, user, "cancel")
            refuse_registry(row, "cancel")
            state = JobState(row.state)
            repo = JobRepository(session)
            # A job already handed to a cluster that queues it ends when the cluster says.
            if state is JobState.PENDING and row.native_id is None and repo.transition(
                job_id, state, JobState.CANCELLED, utcnow(),
                reason="cancelled by " + user.describe(), values={"end_time": utcnow()},
            ):
                record = to_record(row)
                backend = self.backends.get(record.cluster)
                if backend is not None and backend.capabilities.queues:
                    # It may be being handed over right now: the backend makes sure
                    # it does not run.
                    backend.cancel(record)
                return record
        record = self.get(job_id, user)
        if record.state.final:
            raise ConflictError(f"job {job_id} has already ended ({record.state})",
                                details={"state": record.state.value})
        self.backend_for(record, "cancel").cancel(record)
        return record

    # -- engine side ----------------------------------------------------------

    def apply_updates(self, updates: Sequence[JobUpdate]) -> None:
        """Apply backend updates in one transaction, forward-only."""
        if not updates:
            return
        now = utcnow()
        deleted_ended: list[int] = []
        with self.sessions.begin() as session:
            repo = JobRepository(session)
            jobs = repo.snapshots(update.job_id for update in updates)
            changes = []
            for update in updates:
                job = jobs.get(update.job_id)
                if job is None:
                    log.warning("update for unknown job %s ignored", update.job_id)
                    continue
                change = decide_update(job, update, now)
                if change is not None:
                    changes.append(change)
                    # A later update of the same job in this batch starts from here.
                    jobs[job.id] = Snapshot(
                        job.id, change.move[1] if change.move else job.state,
                        change.values.get("start_time", job.start_time), job.requeue_count,
                        job.deleted)
                    if job.deleted and change.move and change.move[1].final:
                        deleted_ended.append(job.id)
            repo.apply(changes, now)
        if deleted_ended:
            self.on_deleted_ended(deleted_ended)

    def backend_for(self, job: JobRecord, verb: str) -> Backend:
        """The backend of the job's cluster, if it can carry out `verb`.

        Raises:
            VerbNotSupportedError: it cannot, whatever the job's state (and no
                cluster here runs a registry job).
        """
        refuse_registry(job, verb)
        backend = self.backends[job.cluster]
        if verb not in backend.capabilities.verbs:
            raise VerbNotSupportedError(
                f"cluster {job.cluster!r} does not support {verb}",
                details={"verb": verb, "cluster": job.cluster})
        return backend

    def visible_row(self, session: Session, job_id: int, user: Principal) -> JobRow:
        row = JobRepository(session).get(job_id)
        require_visible(row, job_id, user)
        assert row is not None
        return row


def visible_filter(filters: JobFilter, user: Principal) -> JobFilter | None:
    """`filters` narrowed to the jobs a non-admin may see: their own and their
    projects' (a service account: within its projects); None when it asks for
    none of those."""
    projects = tuple(sorted(user.projects))
    owner = None if user.scoped else user.name
    if owner is None and not projects:
        return None
    return replace(filters, visible_to=(owner, projects))


def refuse_registry(job: JobRecord | JobRow, verb: str) -> None:
    """Refuse to steer, or to serve the files of, a job pushed into the registry:
    another scheduler runs it, and its paths are that scheduler's.

    Raises:
        VerbNotSupportedError: naming the verb, when `job` is a registry job.
    """
    if job.source == REGISTRY:
        raise VerbNotSupportedError(
            f"{verb}: not available for job {job.id}, a registry job (run by the "
            f"scheduler of cluster {job.cluster!r}, not by jobgate)",
            details={"verb": verb, "cluster": job.cluster, "source": REGISTRY})


def check_dependencies_exist(session: Session, text: str) -> None:
    """Refuse dependencies on jobs the ledger does not know, as sbatch does.

    Raises:
        InvalidSpecError: a syntax error, or naming the unknown jobs.
    """
    deps = parse_dependencies(text)
    refs = {ref for condition in deps.conditions for ref in condition.refs}
    missing = sorted(str(ref) for ref in refs - set(states_of_refs(session, refs)))
    if missing:
        raise InvalidSpecError("dependencies", text, f"no such job: {', '.join(missing)}")


def apply_partition_limits(spec: JobSpec, partition: PartitionConfig) -> JobSpec:
    """The spec with the partition's default time; refused past its limits.

    Raises:
        InvalidSpecError: naming the field and the partition's limit.
    """
    if spec.time_limit is None and "time_limit" not in spec.model_fields_set \
            and partition.default_time is not None:
        spec = spec.model_copy(update={"time_limit": partition.default_time})
    where = f"partition {partition.name!r}"
    if partition.max_time is not None and (spec.time_limit is None
                                           or spec.time_limit > partition.max_time):
        raise InvalidSpecError("time_limit", spec.time_limit if spec.time_limit is not None
                               else "UNLIMITED",
                               f"{where} allows at most {format_duration(partition.max_time)}")
    cpus = (spec.ntasks or 1) * (spec.cpus_per_task or 1)
    if partition.max_cpus_per_job is not None and cpus > partition.max_cpus_per_job:
        raise InvalidSpecError("cpus_per_task", cpus,
                               f"{where} allows at most {partition.max_cpus_per_job} CPUs a job")
    memory = job_memory(spec.memory, spec.memory_per_cpu, cpus)
    if partition.max_memory_per_job is not None and memory > partition.max_memory_per_job:
        raise InvalidSpecError("memory", f"{memory} MiB",
                               f"{where} allows at most {partition.max_memory_per_job} MiB a job")
    return spec


def submit_reason(user: Principal) -> str:
    """The first event's reason: a service account acting for the user is named."""
    return f"submitted by {user.describe()}" if user.actor else "submitted"


def job_values(spec: JobSpec, cluster: str, partition: str, user_name: str, now: datetime,
               *, task: int | None = None, array_job_id: int | None = None) -> dict[str, Any]:
    """The columns of a job being submitted (all but its id and its paths)."""
    return {
        **spec_columns(spec, cluster, partition), "state": JobState.PENDING.value,
        "state_reason": held_reason(spec.hold, "user"), "held": spec.hold,
        "user_name": user_name, "working_directory": "", "standard_output": "",
        "standard_error": "", "submit_time": now, "updated_at": now, "requeue_count": 0,
        "array_job_id": array_job_id, "array_task_id": task, "source": GATEWAY,
    }


def resolve_path(path: str, parents: dict[str, str] | None = None) -> str:
    """`Path(path).resolve()`. With `parents`, a parent directory resolved
    before is not resolved again (a batch's jobs share theirs): only the last
    component is looked at, which may be a symbolic link."""
    if parents is None or not os.path.isabs(path):
        return str(Path(path).resolve())
    parent, name = os.path.split(path)
    if name in ("", ".", "..") or os.path.islink(path):
        return str(Path(path).resolve())
    if parent not in parents:
        parents[parent] = str(Path(parent).resolve())
    return os.path.join(parents[parent], name)


def spec_columns(spec: JobSpec, cluster: str, partition: str) -> dict[str, Any]:
    """The ledger columns a spec decides."""
    return {
        "name": spec.name or ("wrap" if spec.command is not None else "batch"),
        "cluster": cluster, "partition": partition, "account": spec.account,
        "project": spec.project,
        "num_nodes": spec.nodes or 1, "ntasks": spec.ntasks or 1,
        "cpus_per_task": spec.cpus_per_task or 1, "memory": spec.memory,
        "memory_per_cpu": spec.memory_per_cpu, "gpus": spec.gpus or 0,
        "time_limit": spec.time_limit, "priority": spec.priority or 0,
        "comment": spec.comment, "spec": spec.model_dump(mode="json", exclude_unset=True),
    }


def held_reason(held: bool, mode: str) -> str | None:
    """Slurm's pending reason of a held job."""
    if not held:
        return None
    return "JobHeldAdmin" if mode == "admin" else "JobHeldUser"


def decide_update(job: Snapshot, update: JobUpdate, now: datetime) -> Change | None:
    """What one backend update changes: a new state through the transition
    table, or new facts only; None when it changes nothing."""
    if update.run is not None and update.run != job.requeue_count:
        return None  # about a run the job has since been requeued from
    values: dict[str, Any] = {
        key: value for key, value in {
            "start_time": update.start_time, "end_time": update.end_time,
            "exit_code": update.exit_code, "exit_code_signal": update.exit_code_signal,
            "native_id": update.native_id,
        }.items() if value is not None
    }
    if job.start_time is not None:
        # The start reported first (the allocation) stands; later reports of the
        # same run only refine what was unknown.
        values.pop("start_time", None)
    if update.state is job.state or update.facts_only:
        if update.reason is not None and update.state is job.state:
            values["state_reason"] = update.reason  # e.g. a queued job's pending reason
        return Change(job.id, values) if values else None
    if not can_transition(job.state, update.state):
        log.warning("job %s: %s -> %s refused (forward only)", job.id, job.state, update.state)
        return None
    if update.state.final and "end_time" not in values:
        values["end_time"] = now
    if update.state.final and update.data:
        values["stats"] = update.data
    return Change(job.id, values, move=(job.state, update.state), reason=update.reason,
                  data=update.data)
