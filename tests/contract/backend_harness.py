"""A harness that drives a backend through its protocol with real processes."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobgate.backends.base import Backend
from jobgate.domain.job import JobRecord, JobUpdate
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import JobgateError


class Harness:
    """Makes job records and waits for a backend's updates about them.

    `patience` scales every wait: Slurm starts jobs on its scheduler's passes and
    checks time limits periodically, so its waits are longer (never skipped).
    """

    def __init__(self, backend: Backend, workdir: Path, *, patience: float = 1.0) -> None:
        self.backend = backend
        self.workdir = workdir
        self.patience = patience
        self.next_id = 1
        self.seen: dict[int, list[JobUpdate]] = {}
        self.native_ids: dict[int, str] = {}
        partitions = backend.partitions()
        self.partition = next((p.name for p in partitions if p.default), partitions[0].name)
        self.cluster = getattr(backend, "cluster", "local")
        self.started: list[JobRecord] = []

    def record(self, job_id: int | None = None, **fields: Any) -> JobRecord:
        if job_id is None:
            job_id, self.next_id = self.next_id, self.next_id + 1
        spec = JobSpec.parse(fields)
        return JobRecord(
            id=job_id, name=spec.name or "batch", state=JobState.RUNNING, state_reason=None,
            held=False, user_name="tester", cluster=self.cluster, partition=self.partition,
            account=spec.account, num_nodes=1, ntasks=spec.ntasks or 1,
            cpus_per_task=spec.cpus_per_task or 1, memory=spec.memory, memory_per_cpu=None,
            gpus=0, time_limit=spec.time_limit, priority=0, tags=[], comment=None,
            working_directory=str(self.workdir),
            standard_output=str(self.workdir / f"out-{job_id}"),
            standard_error=str(self.workdir / f"err-{job_id}"),
            submit_time=datetime.now(UTC), start_time=None, end_time=None, exit_code=None,
            exit_code_signal=None, requeue_count=0, native_id=None, spec=spec,
        )

    def start(self, job: JobRecord) -> JobUpdate:
        """Hand a job to the backend as the engine does: a failure to launch is
        the job's FAILED update."""
        try:
            update = self.backend.start(job)
        except JobgateError as exc:
            update = JobUpdate(job.id, JobState.FAILED, reason=exc.message)
        self.started.append(job)
        self.note(update)
        return update

    def note(self, update: JobUpdate) -> None:
        self.seen.setdefault(update.job_id, []).append(update)
        if update.native_id is not None:
            self.native_ids[update.job_id] = update.native_id

    def run(self, **fields: Any) -> JobRecord:
        job = self.record(**fields)
        update = self.start(job)
        # Handed over: started here, or queued by a cluster that schedules.
        expected = JobState.PENDING if self.backend.capabilities.queues else JobState.RUNNING
        assert update.state is expected, update
        return job

    def as_in_ledger(self, job: JobRecord) -> JobRecord:
        """The job as the ledger has it once the updates so far were applied
        (its native id: a backend that queues may report it after the start)."""
        self.pump()
        return job.model_copy(update={"native_id": self.native_ids.get(job.id)})

    def pump(self) -> None:
        for update in self.backend.poll():
            self.note(update)

    def final(self, job: JobRecord, timeout: float = 30.0) -> JobUpdate:
        deadline = time.monotonic() + timeout * self.patience
        while time.monotonic() < deadline:
            self.pump()
            for update in self.seen.get(job.id, []):
                if update.state.final or update.state is JobState.UNKNOWN:
                    return update
            time.sleep(0.05)
        raise AssertionError(f"job {job.id} did not end within {timeout * self.patience}s")

    def states(self, job: JobRecord) -> list[JobState]:
        return [update.state for update in self.seen.get(job.id, [])]

    def wait_for_file(self, path: Path, timeout: float = 15.0, allow_empty: bool = False) -> str:
        deadline = time.monotonic() + timeout * self.patience
        while time.monotonic() < deadline:
            if path.exists() and (allow_empty or path.read_text()):
                return path.read_text()
            time.sleep(0.02)
        raise AssertionError(f"{path} was not written")

    def cleanup(self) -> None:
        """Cancel what a failed test left running (a real cluster outlives tests)."""
        for job in self.started:
            ended = any(u.state.final for u in self.seen.get(job.id, []))
            if not ended:
                with contextlib.suppress(JobgateError):
                    self.backend.cancel(self.as_in_ledger(job))
