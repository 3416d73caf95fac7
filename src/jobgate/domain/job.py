"""A job as the ledger knows it, and the updates backends report about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState


class JobRecord(BaseModel):
    """One row of the ledger, with pyslurm's attribute names where they exist."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    state: JobState
    state_reason: str | None
    held: bool
    user_name: str
    cluster: str
    partition: str
    account: str | None
    num_nodes: int
    ntasks: int
    cpus_per_task: int
    memory: int | None
    memory_per_cpu: int | None
    gpus: int
    time_limit: int | None
    priority: int
    tags: list[str]
    comment: str | None
    working_directory: str
    standard_output: str
    standard_error: str
    submit_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    exit_code: int | None
    exit_code_signal: int | None
    requeue_count: int
    native_id: str | None
    spec: JobSpec
    array_job_id: int | None = None
    array_task_id: int | None = None
    allocation: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    # "gateway" (submitted here) or "registry" (pushed by an outside scheduler),
    # with the registry record's fields that have no column of their own.
    source: str = "gateway"
    registry_data: dict[str, Any] | None = None
    # The project the job was submitted to (None: its user is in no project).
    project: str | None = None

    @property
    def cpus(self) -> int:
        return self.ntasks * self.cpus_per_task

    def run_time(self, now: datetime) -> int:
        """Seconds the job has run so far (or ran in all, once it ended)."""
        if self.start_time is None:
            return 0
        end = self.end_time or now
        return max(0, int((end - self.start_time).total_seconds()))


@dataclass(frozen=True)
class JobUpdate:
    """What a backend learned about one job; applied forward-only by the service."""

    job_id: int
    state: JobState
    reason: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    exit_code_signal: int | None = None
    native_id: str | None = None
    # Which run of the job this is about (its requeue_count at launch); an
    # update about an earlier run is stale once the job has been requeued.
    run: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Confirms a state the gateway wrote itself (a launch confirming its claim):
    # it sets the facts only, so that arriving after a verb (a suspend) it
    # cannot take the job back to the state it confirms.
    facts_only: bool = False
