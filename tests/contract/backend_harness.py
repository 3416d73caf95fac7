"""A harness that drives a backend through its protocol with real processes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobgate.backends.base import Backend
from jobgate.domain.job import JobRecord, JobUpdate
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState


class Harness:
    """Makes job records and waits for a backend's updates about them."""

    def __init__(self, backend: Backend, workdir: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self.next_id = 1
        self.seen: dict[int, list[JobUpdate]] = {}

    def record(self, job_id: int | None = None, **fields: Any) -> JobRecord:
        if job_id is None:
            job_id, self.next_id = self.next_id, self.next_id + 1
        spec = JobSpec.parse(fields)
        return JobRecord(
            id=job_id, name=spec.name or "batch", state=JobState.RUNNING, state_reason=None,
            held=False, user_name="tester", cluster="local", partition="normal",
            account=spec.account, num_nodes=1, ntasks=spec.ntasks or 1,
            cpus_per_task=spec.cpus_per_task or 1, memory=spec.memory, memory_per_cpu=None,
            gpus=0, time_limit=spec.time_limit, priority=0, tags=[], comment=None,
            working_directory=str(self.workdir),
            standard_output=str(self.workdir / f"out-{job_id}"),
            standard_error=str(self.workdir / f"err-{job_id}"),
            submit_time=datetime.now(UTC), start_time=None, end_time=None, exit_code=None,
            exit_code_signal=None, requeue_count=0, native_id=None, spec=spec,
        )

    def run(self, **fields: Any) -> JobRecord:
        job = self.record(**fields)
        update = self.backend.start(job)
        assert update.state is JobState.RUNNING
        return job

    def final(self, job: JobRecord, timeout: float = 30.0) -> JobUpdate:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for update in self.backend.poll():
                self.seen.setdefault(update.job_id, []).append(update)
            for update in self.seen.get(job.id, []):
                if update.state.final or update.state is JobState.UNKNOWN:
                    return update
            time.sleep(0.05)
        raise AssertionError(f"job {job.id} did not end within {timeout}s")

    def wait_for_file(self, path: Path, timeout: float = 15.0, allow_empty: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and (allow_empty or path.read_text()):
                return path.read_text()
            time.sleep(0.02)
        raise AssertionError(f"{path} was not written")
