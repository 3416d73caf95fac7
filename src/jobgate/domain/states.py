"""Job states (Slurm's base states plus UNKNOWN) and the moves allowed between them.

Updates only move forward: a final state never changes except through an
explicit requeue, which the caller must ask for (``requeue=True``).
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    UNKNOWN = "UNKNOWN"

    @property
    def final(self) -> bool:
        """True once the job has ended for good (until an explicit requeue)."""
        return self in FINAL_STATES

    @property
    def active(self) -> bool:
        """True while the job holds or may still get resources."""
        return self in ACTIVE_STATES


FINAL_STATES = frozenset({
    JobState.COMPLETED,
    JobState.CANCELLED,
    JobState.FAILED,
    JobState.TIMEOUT,
    JobState.NODE_FAIL,
    JobState.PREEMPTED,
    JobState.BOOT_FAIL,
    JobState.DEADLINE,
    JobState.OUT_OF_MEMORY,
})

ACTIVE_STATES = frozenset({
    JobState.PENDING, JobState.RUNNING, JobState.SUSPENDED, JobState.COMPLETING,
})

# Ways a job can end once it has started. A job that never started can only be
# cancelled, miss its deadline, fail to launch or lose its node.
_ENDINGS_OF_STARTED = FINAL_STATES
_ENDINGS_OF_PENDING = frozenset({
    JobState.CANCELLED, JobState.FAILED, JobState.DEADLINE, JobState.BOOT_FAIL,
    JobState.NODE_FAIL,
})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: _ENDINGS_OF_PENDING | {JobState.RUNNING, JobState.UNKNOWN},
    # RUNNING -> PENDING is a requeue of a running job (Slurm allows it too).
    JobState.RUNNING: _ENDINGS_OF_STARTED | {
        JobState.SUSPENDED, JobState.COMPLETING, JobState.UNKNOWN, JobState.PENDING,
    },
    JobState.SUSPENDED: _ENDINGS_OF_STARTED | {
        JobState.RUNNING, JobState.UNKNOWN, JobState.PENDING,
    },
    JobState.COMPLETING: _ENDINGS_OF_STARTED | {JobState.UNKNOWN},
    # Regaining sight of a job may reveal any state it reached meanwhile.
    JobState.UNKNOWN: frozenset(JobState) - {JobState.UNKNOWN, JobState.PENDING},
    **{state: frozenset() for state in FINAL_STATES},
}


def can_transition(current: JobState, new: JobState, *, requeue: bool = False) -> bool:
    """Whether a job may move from ``current`` to ``new``.

    ``requeue=True`` additionally allows any started or final job back to PENDING,
    which is how an explicit requeue revives a finished job.
    """
    if requeue and new is JobState.PENDING and current is not JobState.PENDING:
        return True
    return new in TRANSITIONS[current]
