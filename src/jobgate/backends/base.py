"""The protocol every cluster backend implements.

The engine drives backends from one thread: `start` hands over a job, `poll`
returns what changed since the last call, `adopt` takes back jobs after a
restart. Verbs such as `cancel` may be called from request threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from jobgate.config import PartitionConfig
from jobgate.domain.job import JobRecord, JobUpdate
from jobgate.domain.spec import JobSpec


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the service refuses what it cannot."""

    verbs: frozenset[str] = field(default_factory=frozenset)
    # JobSpec fields the backend honours when they are set to a non-default value.
    spec_fields: frozenset[str] = field(default_factory=frozenset)
    # The cluster keeps a queue of its own (Slurm): a job handed over stays
    # PENDING, with its native id, until the cluster starts it; the engine does
    # not claim it as started.
    queues: bool = False


@dataclass(frozen=True)
class Selection:
    """Which pending jobs to start now (with the allocation to record, if the
    backend places jobs itself) and why each of the others waits."""

    start: dict[int, dict[str, Any] | None]
    reasons: dict[int, str]


class Backend(Protocol):
    name: str
    capabilities: Capabilities

    def check(self, spec: JobSpec) -> None:
        """Refuse a spec this backend cannot run as asked.

        Raises:
            UnsupportedError: a field or value the backend does not support (yet).
            InvalidSpecError: a value that can never work here (e.g. no such directory).
        """

    def partitions(self) -> list[PartitionConfig]:
        """The partitions jobs may ask for, with their limits."""

    def default_working_directory(self, job_id: int) -> str:
        """Where a job runs when the request names no directory; the backend
        creates it by the time the job starts."""

    def select(
        self, pending: Sequence[JobRecord], active: Sequence[JobRecord], now: datetime
    ) -> Selection:
        """Of the eligible pending jobs (priority order), those to start now.

        A backend that schedules (the local cluster) decides placement here; one
        in front of a scheduler of its own (Slurm) hands every job over at once.
        """

    def start(self, job: JobRecord) -> JobUpdate:
        """Launch a job the engine has claimed (or, for a backend that queues,
        hand it over); idempotent for the same job.

        Raises:
            BackendError: the job could not be launched.
        """

    def adopt(self, jobs: Sequence[JobRecord]) -> list[JobUpdate]:
        """Take back jobs the ledger says are active, after a restart.

        Returns updates for jobs whose state is not what the ledger says; jobs
        that never really started are launched now.
        """

    def poll(self) -> list[JobUpdate]:
        """Whatever changed since the last call (never blocks long)."""

    def cancel(self, job: JobRecord) -> None:
        """Ask a started job to stop; its final state arrives through `poll`.

        Raises:
            BackendError: the request could not be delivered.
        """

    def suspend(self, job: JobRecord) -> None:
        """Stop a running job's processes (SIGSTOP); its time limit pauses too.

        Raises:
            ConflictError: the job has no live process here.
        """

    def resume(self, job: JobRecord) -> None:
        """Continue a suspended job (SIGCONT).

        Raises:
            ConflictError: the job has no live process here.
        """

    def set_time_limit(self, job: JobRecord, seconds: int | None) -> None:
        """Change a running job's time limit (None: unlimited).

        Raises:
            ConflictError: the job has no live process here.
        """

    def send_signal(self, job: JobRecord, signum: int) -> None:
        """Deliver a signal to every process of a running job.

        Raises:
            ConflictError: the job has no live process here.
        """

    def notify(self, job: JobRecord, message: str) -> None:
        """Append a message to the job's standard output.

        Raises:
            BackendError: the message could not be written.
        """

    def resources(self) -> dict[str, Any]:
        """What the cluster offers, for people to read (nodes, CPUs, memory, GPUs)."""

    def set_waker(self, waker: Callable[[], None]) -> None:
        """A callable the backend calls when `poll` has something new."""

    def close(self) -> None:
        """Stop watching; jobs keep running."""


@runtime_checkable
class QueueControl(Protocol):
    """Verbs of a backend whose cluster queues jobs (Capabilities.queues), for
    jobs handed over that have not started: the cluster holds them, not jobgate."""

    def hold(self, job: JobRecord, *, admin: bool = False) -> None:
        """Keep a queued job from starting (Slurm's JobHeldUser, or JobHeldAdmin).

        Raises:
            ConflictError: the job is no longer pending there.
        """

    def release(self, job: JobRecord) -> None:
        """Let a held job start.

        Raises:
            ConflictError: the job is not held there.
        """


def refuse_unsupported(spec: JobSpec, capabilities: Capabilities, cluster: str) -> None:
    """Raise for every field set in `spec` that `capabilities` does not cover.

    Raises:
        UnsupportedError: naming the fields.
    """
    from jobgate.errors import UnsupportedError

    defaults = JobSpec.model_fields
    unsupported = sorted(
        name
        for name in spec.model_fields_set
        if name not in capabilities.spec_fields
        and getattr(spec, name) != defaults[name].get_default(call_default_factory=True)
    )
    if unsupported:
        raise UnsupportedError(
            f"cluster {cluster!r} does not support {', '.join(unsupported)} yet",
            details={"fields": unsupported, "cluster": cluster},
        )
