"""LocalBackend: runs jobs on this machine through the launcher/supervisors."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from jobgate.backends.base import Capabilities, refuse_unsupported
from jobgate.backends.local import supervisor
from jobgate.backends.local.jobdir import JobDir
from jobgate.domain.job import JobRecord, JobUpdate
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import BackendError, InvalidSpecError, UnsupportedError

# How often jobs are checked without a word from the launcher (adopted jobs, and
# a safety net should the launcher die).
PROBE_INTERVAL = 1.0

SUPPORTED_FIELDS = frozenset({
    "name", "script", "command", "working_directory", "environment", "cluster",
    "partition", "account", "nodes", "ntasks", "cpus_per_task", "memory",
    "memory_per_cpu", "time_limit", "priority", "tags", "stdout", "stderr", "comment",
    "additional_data",
})


class LocalBackend:
    name = "local"
    capabilities = Capabilities(verbs=frozenset({"cancel"}), spec_fields=SUPPORTED_FIELDS)

    def __init__(self, jobs_dir: Path, *, kill_wait: float = 10.0, cluster: str = "local") -> None:
        self.jobs_dir = jobs_dir
        self.kill_wait = kill_wait
        self.cluster = cluster
        self._waker: Callable[[], None] = lambda: None
        self._ended: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._tracked: set[int] = set()
        self._lock = threading.Lock()
        self._launcher: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._next_probe = 0.0

    # -- protocol -------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        if spec.gpus:
            raise UnsupportedError(
                f"cluster {self.cluster!r} does not support gpus yet",
                details={"fields": ["gpus"], "cluster": self.cluster},
            )
        checked = spec.model_copy(update={"gpus": None}) if spec.gpus == 0 else spec
        refuse_unsupported(checked, self.capabilities, self.cluster)
        if (spec.nodes or 1) > 1:
            raise InvalidSpecError("nodes", spec.nodes, "the local cluster has one node")
        if spec.working_directory is not None and not Path(spec.working_directory).is_dir():
            raise InvalidSpecError(
                "working_directory", spec.working_directory, "no such directory on the cluster"
            )

    def default_working_directory(self, job_id: int) -> str:
        path = self._dir(job_id).path
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def start(self, job: JobRecord) -> JobUpdate:
        job_dir = self._dir(job.id)
        if job_dir.started() or job_dir.supervisor_alive():
            # Launched before (a restart between launch and commit): never twice.
            with self._lock:
                self._tracked.add(job.id)
            return JobUpdate(job.id, JobState.RUNNING, native_id=str(job.id))
        try:
            job_dir.write_launch(self._launch_data(job))
            self._send(str(job_dir.path))
        except OSError as exc:
            raise BackendError(f"could not launch job {job.id}: {exc}") from exc
        with self._lock:
            self._tracked.add(job.id)
        return JobUpdate(
            job.id, JobState.RUNNING, start_time=datetime.now(UTC), native_id=str(job.id)
        )

    def adopt(self, jobs: Sequence[JobRecord]) -> list[JobUpdate]:
        updates = []
        for job in jobs:
            job_dir = self._dir(job.id)
            if job_dir.supervisor_alive():
                with self._lock:
                    self._tracked.add(job.id)
                continue
            ended = job_dir.outcome(job.id)
            if ended is not None:
                updates.append(ended)
            elif job_dir.started():
                updates.append(job_dir.lost_update(job.id))
            else:
                # Claimed but never launched: the crash came first. Launch now.
                self.start(job)
        return updates

    def poll(self) -> list[JobUpdate]:
        done: set[int] = set()
        while True:
            try:
                done.add(self._ended.get_nowait())
            except queue.Empty:
                break
        if time.monotonic() >= self._next_probe:
            self._next_probe = time.monotonic() + PROBE_INTERVAL
            with self._lock:
                tracked = list(self._tracked)
            # Probe the lock before the files: a supervisor writes exit.json
            # before it lets go of the lock.
            done.update(i for i in tracked if not self._dir(i).supervisor_alive()
                        and (self._dir(i).started() or self._dir(i).exit_file.exists()))
        updates = []
        for job_id in done:
            job_dir = self._dir(job_id)
            update = job_dir.outcome(job_id) or job_dir.lost_update(job_id)
            updates.append(update)
            with self._lock:
                self._tracked.discard(job_id)
        return updates

    def cancel(self, job: JobRecord) -> None:
        self._dir(job.id).request_cancel()

    def set_waker(self, waker: Callable[[], None]) -> None:
        self._waker = waker

    def close(self) -> None:
        launcher = self._launcher
        self._launcher = None
        if launcher is None:
            return
        if launcher.stdin is not None:
            launcher.stdin.close()  # the launcher leaves; supervisors stay
        try:
            launcher.wait(timeout=5)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    # -- helpers --------------------------------------------------------------

    def _dir(self, job_id: int) -> JobDir:
        return JobDir(self.jobs_dir / str(job_id))

    def _launch_data(self, job: JobRecord) -> dict[str, Any]:
        job_dir = self._dir(job.id).path
        if job.spec.script is not None:
            script = job_dir / "script"
            job_dir.mkdir(parents=True, exist_ok=True)
            script.write_text(job.spec.script)
            argv = ["/bin/bash", str(script)]
        else:
            argv = ["/bin/bash", "-c", job.spec.command or ""]
        return {
            "argv": argv,
            "cwd": job.working_directory,
            "env": job_environment(job),
            "stdout": job.standard_output,
            "stderr": job.standard_error,
            "time_limit": job.time_limit,
            "kill_wait": self.kill_wait,
        }

    def _send(self, line: str) -> None:
        with self._lock:
            launcher = self._launcher
            if launcher is None or launcher.poll() is not None:
                launcher = self._launcher = self._spawn_launcher()
            assert launcher.stdin is not None
            launcher.stdin.write(line.encode() + b"\n")
            launcher.stdin.flush()

    def _spawn_launcher(self) -> subprocess.Popen[bytes]:
        launcher = subprocess.Popen(
            [sys.executable, "-I", "-S", supervisor.__file__],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            # Its own session: a Ctrl-C meant for the gateway does not reach it.
            start_new_session=True,
        )
        assert launcher.stdout is not None
        self._reader = threading.Thread(
            target=self._read_launcher, args=(launcher.stdout,), daemon=True,
            name="jobgate-local-launcher",
        )
        self._reader.start()
        return launcher

    def _read_launcher(self, stream: IO[bytes]) -> None:
        with stream:
            for line in stream:
                try:
                    job_dir = Path(json.loads(line)["ended"])
                    self._ended.put(int(job_dir.name))
                except (ValueError, KeyError):
                    continue
                self._waker()


def job_environment(job: JobRecord) -> dict[str, str]:
    """The job's environment: the gateway's own (less jobgate's settings), the
    request's variables, then the SLURM_* variables a batch script expects."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBGATE_")}
    env.update(job.spec.environment)
    slurm = {
        "JOB_ID": str(job.id),
        "JOB_NAME": job.name,
        "SUBMIT_DIR": job.working_directory,
        "CPUS_PER_TASK": str(job.cpus_per_task),
        "NTASKS": str(job.ntasks),
        "JOB_PARTITION": job.partition,
        "JOB_NUM_NODES": str(job.num_nodes),
        "CLUSTER_NAME": job.cluster,
    }
    if job.memory is not None:
        slurm["MEM_PER_NODE"] = str(job.memory)
    if job.account:
        slurm["JOB_ACCOUNT"] = job.account
    for key, value in slurm.items():
        env[f"SLURM_{key}"] = value
        env[f"JOBGATE_{key}"] = value
    return env
