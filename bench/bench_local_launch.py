"""Local cluster launch throughput, beside bare process spawns measured in the same run.

    .venv/bin/python bench/bench_local_launch.py [N]

Baseline: N `bash -c true` started and waited for with subprocess, one after the
other's start (what any job daemon must pay at least). Measured: N jobs through
LocalBackend.start until every exit status has been reported by poll().
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from jobgate.backends.local import LocalBackend
from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState


def baseline(n: int) -> float:
    start = time.perf_counter()
    procs = [subprocess.Popen(["/bin/bash", "-c", "true"]) for _ in range(n)]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - start


def record(job_id: int, workdir: Path) -> JobRecord:
    spec = JobSpec.parse({"command": "true"})
    return JobRecord(
        id=job_id, name="bench", state=JobState.RUNNING, state_reason=None, held=False,
        user_name="bench", cluster="local", partition="normal", account=None, num_nodes=1,
        ntasks=1, cpus_per_task=1, memory=None, memory_per_cpu=None, gpus=0,
        time_limit=None, priority=0, tags=[], comment=None, working_directory=str(workdir),
        standard_output=str(workdir / f"{job_id}.out"),
        standard_error=str(workdir / f"{job_id}.err"), submit_time=datetime.now(UTC),
        start_time=None, end_time=None, exit_code=None, exit_code_signal=None,
        requeue_count=0, native_id=None, spec=spec,
    )


def local_backend(n: int, root: Path) -> float:
    backend = LocalBackend(root)
    jobs = [record(i, root) for i in range(1, n + 1)]
    start = time.perf_counter()
    for job in jobs:
        backend.start(job)
    finished = 0
    while finished < n:
        finished += sum(1 for u in backend.poll() if u.state.final)
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    backend.close()
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline(n)
        local = local_backend(n, Path(tmp))
    print(f"{'what':<34}{'jobs':>6}{'seconds':>10}{'jobs/s':>10}{'x baseline':>12}")
    print(f"{'bash -c true via subprocess':<34}{n:>6}{base:>10.2f}{n / base:>10.0f}{1:>12.2f}")
    print(f"{'LocalBackend start -> exit seen':<34}{n:>6}{local:>10.2f}{n / local:>10.0f}"
          f"{local / base:>12.2f}")


if __name__ == "__main__":
    main()
