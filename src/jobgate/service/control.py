"""The control verbs: hold, release, suspend, resume, requeue, signal, notify, modify.

A verb that does not apply in the job's current state raises ConflictError. Each
change is committed with its event; verbs that need the job's processes go
through the cluster's backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from sqlalchemy.orm import Session

from jobgate.backends.base import QueueControl
from jobgate.domain.job import JobRecord
from jobgate.domain.parsing import parse_signal
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState, can_transition
from jobgate.errors import ConflictError, InvalidSpecError, PermissionDeniedError
from jobgate.service.access import require_actable
from jobgate.service.auth import Principal
from jobgate.service.jobs import (
    JobService,
    held_reason,
    refuse_registry,
    spec_columns,
    utcnow,
)
from jobgate.store.jobs import JobRepository, to_record
from jobgate.store.tables import JobRow, JobTagRow

HoldMode = Literal["user", "admin"]
STARTED = (JobState.RUNNING, JobState.SUSPENDED)
# What may change while a job runs (as with Slurm's scontrol update).
RUNNING_FIELDS = frozenset({"time_limit", "name", "comment"})
MAX_NOTIFY_BYTES = 4096


# What a verb did, as the job's event says it ("resumed by ana").
_DONE = {"suspend": "suspended", "resume": "resumed"}


class JobControl:
    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs

    @contextmanager
    def _job(self, job_id: int, user: Principal, verb: str
             ) -> Iterator[tuple[JobRepository, JobRow]]:
        with self.jobs.sessions.begin() as session:
            row = self.jobs.visible_row(session, job_id, user)
            require_actable(row, user, verb)
            refuse_registry(row, verb)
            yield JobRepository(session), row

    def _get(self, job_id: int, user: Principal, verb: str) -> JobRecord:
        """The job, if `user` may steer it (NotFoundError, PermissionDeniedError)."""
        job = self.jobs.get(job_id, user)
        require_actable(job, user, verb)
        return job

    def hold(self, job_id: int, user: Principal, mode: HoldMode = "user") -> JobRecord:
        """Keep a pending job from starting (JobHeldUser or JobHeldAdmin).

        Raises:
            NotFoundError, ConflictError: not pending; PermissionDeniedError: an
            admin hold asked by a user who is not an admin.
        """
        with self._job(job_id, user, "hold") as (repo, row):
            # After the visibility check: who may not see the job gets 404 here too.
            if mode == "admin" and not user.is_admin:
                raise PermissionDeniedError("only an admin may place an admin hold")
            _require(row, (JobState.PENDING,), "hold")
            queue = self._cluster_queue(row)
            if queue is not None:  # already in the cluster's queue: held there
                queue.hold(to_record(row), admin=mode == "admin")
            repo.change(row, utcnow(), f"held by {user.describe()}",
                        {"held": True, "state_reason": held_reason(True, mode)}, {"verb": "hold"})
            return to_record(row)

    def release(self, job_id: int, user: Principal) -> JobRecord:
        """Let a held job start again.

        Raises:
            NotFoundError; ConflictError: not held; PermissionDeniedError: an
            admin hold released by a user who is not an admin.
        """
        with self._job(job_id, user, "release") as (repo, row):
            if not (row.state == JobState.PENDING and row.held):
                raise ConflictError(f"job {job_id} is not held", details={"state": row.state})
            if row.state_reason == "JobHeldAdmin" and not user.is_admin:
                raise PermissionDeniedError("only an admin may release an admin hold")
            queue = self._cluster_queue(row)
            if queue is not None:
                queue.release(to_record(row))
            repo.change(row, utcnow(), f"released by {user.describe()}",
                        {"held": False, "state_reason": None}, {"verb": "release"})
            record = to_record(row)
        self.jobs.wake_engine()
        return record

    def suspend(self, job_id: int, user: Principal) -> JobRecord:
        """Stop a running job's processes; its time limit pauses.

        Raises:
            NotFoundError; ConflictError: the job is not running.
        """
        return self._signal_state(job_id, user, JobState.RUNNING, JobState.SUSPENDED,
                                  "suspend")

    def resume(self, job_id: int, user: Principal) -> JobRecord:
        """Continue a suspended job.

        Raises:
            NotFoundError; ConflictError: the job is not suspended.
        """
        return self._signal_state(job_id, user, JobState.SUSPENDED, JobState.RUNNING,
                                  "resume")

    def _signal_state(
        self, job_id: int, user: Principal, expected: JobState, new: JobState, verb: str
    ) -> JobRecord:
        job = self._get(job_id, user, verb)
        backend = self.jobs.backend_for(job, verb)
        _require_state(job.id, job.state, (expected,), verb)
        getattr(backend, verb)(job)
        with self._job(job_id, user, verb) as (repo, row):
            repo.transition(row.id, expected, new, utcnow(),
                            reason=f"{_DONE[verb]} by {user.describe()}")
            return to_record(row)

    def requeue(self, job_id: int, user: Principal, *, hold: bool = False) -> JobRecord:
        """Send a started or ended job back to PENDING for a fresh run.

        Raises:
            NotFoundError; ConflictError: the job is still pending, or was
                submitted with requeue false (--no-requeue).
        """
        with self._job(job_id, user, "requeue") as (repo, row):
            current = JobState(row.state)
            if not can_transition(current, JobState.PENDING, requeue=True):
                raise ConflictError(f"job {job_id} is {current}; only a started or ended "
                                    "job can be requeued", details={"state": current})
            previous = to_record(row)
            if previous.spec.requeue is False:
                # As scontrol: "Requested operation is presently disabled".
                raise ConflictError(f"job {job_id} was submitted with requeue false "
                                    "(--no-requeue): it may not be requeued",
                                    details={"requeue": False})
            repo.transition(row.id, current, JobState.PENDING, utcnow(),
                            reason=f"requeued by {user.describe()}", values={
                                "requeue_count": row.requeue_count + 1, "start_time": None,
                                "end_time": None, "exit_code": None, "exit_code_signal": None,
                                "native_id": None, "held": hold,
                                "state_reason": held_reason(hold, "user"),
                            }, data={"verb": "requeue", "run": previous.requeue_count})
            record = to_record(row)
        if current in STARTED:
            # The old run is stopped; its end is ignored, being about an old run.
            self.jobs.backends[previous.cluster].cancel(previous)
        self.jobs.wake_engine()
        return record

    def send_signal(self, job_id: int, user: Principal, signal_name: str | int) -> JobRecord:
        """Deliver a signal (name or number) to every process of a running job.

        Raises:
            InvalidSpecError: no such signal; NotFoundError; ConflictError: not running.
        """
        signum = parse_signal(signal_name)
        job = self._get(job_id, user, "signal")
        backend = self.jobs.backend_for(job, "signal")
        _require_state(job.id, job.state, STARTED, "signal")
        backend.send_signal(job, signum)
        return job

    def notify(self, job_id: int, user: Principal, message: str) -> JobRecord:
        """Append a message to a running job's standard output.

        Raises:
            InvalidSpecError: an empty or too long message; NotFoundError;
            ConflictError: not running.
        """
        if not message.strip() or len(message.encode()) > MAX_NOTIFY_BYTES:
            raise InvalidSpecError("message", message[:40],
                                   f"must be 1 to {MAX_NOTIFY_BYTES} bytes")
        job = self._get(job_id, user, "notify")
        backend = self.jobs.backend_for(job, "notify")
        _require_state(job.id, job.state, STARTED, "notify")
        backend.notify(job, message)
        return job

    def modify(self, job_id: int, user: Principal, changes: dict[str, Any]) -> JobRecord:
        """Change a pending job's spec (any field), or a running job's time
        limit, name or comment.

        Raises:
            InvalidSpecError, UnsupportedError: the changed spec is not valid here;
            NotFoundError; ConflictError: the job has ended, or a field that
            cannot change while it runs; VerbNotSupportedError: a registry job.
        """
        job = self._get(job_id, user, "modify")
        refuse_registry(job, "modify")
        queued = job.state is JobState.PENDING and self._cluster_queue(job) is not None
        if job.state is JobState.PENDING and not queued:
            return self._modify_pending(job, user, changes)
        # A job in the cluster's queue changes as a running one does (scontrol update).
        _require_state(job.id, job.state, (*STARTED, JobState.PENDING) if queued else STARTED,
                       "modify")
        frozen = sorted(set(changes) - RUNNING_FIELDS)
        if frozen:
            raise ConflictError(
                f"job {job_id} is {job.state}: only time_limit, name and comment can change "
                f"while it runs, not {', '.join(frozen)}", details={"fields": frozen})
        merged = JobSpec.parse(job.spec.model_dump(exclude_unset=True) | changes)
        if "time_limit" in changes:
            self.jobs.backend_for(job, "modify").set_time_limit(job, merged.time_limit)
        with self._job(job_id, user, "modify") as (repo, row):
            values = {k: getattr(merged, k) for k in changes}
            values["spec"] = merged.model_dump(mode="json", exclude_unset=True)
            repo.change(row, utcnow(), f"modified by {user.describe()}", values,
                        {"verb": "modify", "fields": sorted(changes)})
            return to_record(row)

    @staticmethod
    def _owner(job: JobRecord, user: Principal) -> Principal:
        """Whose project rules a changed spec meets: the owner's, as far as the
        caller knows them (a manager steering a member's job: the same project)."""
        if user.is_admin or job.user_name == user.name or job.project is None:
            return user
        return Principal(name=job.user_name, is_admin=False,
                         projects={job.project: user.projects.get(job.project, "member")})

    def _cluster_queue(self, job: JobRow | JobRecord) -> QueueControl | None:
        """The backend holding the job in its cluster's queue, if it was handed over."""
        backend = self.jobs.backends.get(job.cluster)
        if job.native_id is None or backend is None or not backend.capabilities.queues \
                or not isinstance(backend, QueueControl):
            return None
        return backend

    def _modify_pending(self, job: JobRecord, user: Principal, changes: dict[str, Any]
                        ) -> JobRecord:
        spec, cluster, partition = self.jobs.checked(
            JobSpec.parse(job.spec.model_dump(exclude_unset=True) | changes), self._owner(job, user)
        )
        with self._job(job.id, user, "modify") as (repo, row):
            _require(row, (JobState.PENDING,), "modify")
            columns = spec_columns(spec, cluster, partition)
            if "hold" in changes:
                columns |= {"held": spec.hold, "state_reason": held_reason(spec.hold, "user")}
            repo.change(row, utcnow(), f"modified by {user.describe()}", columns,
                        {"verb": "modify", "fields": sorted(changes)})
            if "tags" in changes:
                row.tags = [JobTagRow(tag=t, position=i) for i, t in enumerate(spec.tags)]
            self.jobs.place(row, spec)
            _flush(repo.session)
            record = to_record(row)
        self.jobs.wake_engine()
        return record


def _require(row: JobRow, states: tuple[JobState, ...], verb: str) -> None:
    _require_state(row.id, JobState(row.state), states, verb)


def _require_state(job_id: int, state: JobState, states: tuple[JobState, ...], verb: str
                   ) -> None:
    if state not in states:
        allowed = " or ".join(s.value for s in states)
        raise ConflictError(f"cannot {verb} job {job_id}: it is {state}, not {allowed}",
                            details={"state": state.value})


def _flush(session: Session) -> None:
    session.flush()
