"""LocalBackend: runs jobs on this machine through the job daemon (daemon.py)."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobgate.backends.base import Capabilities, Selection, refuse_unsupported
from jobgate.backends.local.connection import DaemonConnection
from jobgate.backends.local.environment import gateway_environment, job_environment
from jobgate.backends.local.jobdir import JobDir, live_daemon
from jobgate.backends.local.resources import node_name, node_resources
from jobgate.backends.local.scheduler import Allocation, Request, Running, schedule
from jobgate.backends.scripts import script_argv
from jobgate.config import ClusterConfig, PartitionConfig
from jobgate.domain.job import JobRecord, JobUpdate
from jobgate.domain.parsing import parse_warn_signal
from jobgate.domain.spec import JobSpec, job_memory
from jobgate.domain.states import JobState
from jobgate.errors import BackendError, ConflictError, InvalidSpecError

TIER_WEIGHT = 1 << 32

# How often runs are checked without a word from the daemon (a safety net
# should a message be lost or the daemon die).
PROBE_INTERVAL = 1.0
# How long an order waits for the launch of a job claimed a moment ago.
LAUNCH_WAIT = 2.0

SUPPORTED_FIELDS = frozenset({
    "name", "script", "command", "working_directory", "environment", "cluster",
    "partition", "account", "project", "nodes", "ntasks", "cpus_per_task", "memory",
    "memory_per_cpu", "time_limit", "priority", "tags", "stdout", "stderr", "comment",
    "additional_data", "hold", "gpus", "begin", "deadline", "array", "dependencies",
    "kill_on_invalid_dependency", "open_mode", "requeue", "qos", "mail_type", "mail_user",
    "signal",
})


class LocalBackend:
    """Jobs of the local cluster. Under `home`: `jobs/<id>` is a job's default
    working directory, `runs/<id>.<run>` the daemon's record of each run."""

    name = "local"
    capabilities = Capabilities(
        verbs=frozenset({"cancel", "suspend", "resume", "signal", "notify", "modify"}),
        spec_fields=SUPPORTED_FIELDS,
    )

    def __init__(
        self, home: Path, *, kill_wait: float = 10.0, cluster: str = "local",
        config: ClusterConfig | None = None,
    ) -> None:
        self.config = config or ClusterConfig()
        self.resources_of_node = node_resources(self.config)
        self.node = node_name()
        self.jobs_dir = home / "jobs"
        self._base_environment = gateway_environment()
        self.runs_dir = home / "runs"
        self.kill_wait = kill_wait
        self.cluster = cluster
        self._waker: Callable[[], None] = lambda: None
        self._ended: queue.SimpleQueue[JobDir] = queue.SimpleQueue()
        self._tracked: set[JobDir] = set()
        self._lock = threading.Lock()
        self._daemon = DaemonConnection(self.runs_dir, self._ended_run)
        self._next_probe = 0.0

    # -- protocol -------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        refuse_unsupported(spec, self.capabilities, self.cluster)
        if (spec.nodes or 1) > 1:
            raise InvalidSpecError("nodes", spec.nodes, "the local cluster has one node")
        node = self.resources_of_node
        cpus = (spec.ntasks or 1) * (spec.cpus_per_task or 1)
        if cpus > len(node.cpus):
            raise InvalidSpecError("cpus_per_task", cpus,
                                   f"more CPUs than the local node has ({len(node.cpus)})")
        memory = job_memory(spec.memory, spec.memory_per_cpu, cpus)
        if memory > node.memory:
            raise InvalidSpecError("memory", f"{memory} MiB",
                                   f"more memory than the local node has ({node.memory} MiB)")
        if (spec.gpus or 0) > len(node.gpus):
            raise InvalidSpecError("gpus", spec.gpus,
                                   f"more GPUs than the local node has ({len(node.gpus)})")
        if spec.working_directory is not None and not Path(spec.working_directory).is_dir():
            raise InvalidSpecError(
                "working_directory", spec.working_directory, "no such directory on the cluster"
            )

    def select(
        self, pending: Sequence[JobRecord], active: Sequence[JobRecord], now: datetime
    ) -> Selection:
        tiers = {p.name: p.priority_tier for p in self.config.partitions}
        running = [
            Running(job.id, allocation_of(job), expected_end(job)) for job in active
        ]
        requests = [
            Request(
                job_id=job.id, cpus=job.cpus,
                memory=job_memory(job.memory, job.memory_per_cpu, job.cpus), gpus=job.gpus,
                time_limit=job.time_limit,
                # A partition's tier outranks any priority within it.
                priority=tiers.get(job.partition, 0) * TIER_WEIGHT + job.priority,
            )
            for job in pending
        ]
        decision = schedule(self.resources_of_node, running, requests, now.timestamp())
        return Selection(
            start={
                job_id: {"node": self.node, "cpus": list(a.cpus), "memory": a.memory,
                         "gpus": list(a.gpus)}
                for job_id, a in decision.start
            },
            reasons=decision.waiting,
        )

    def partitions(self) -> list[PartitionConfig]:
        return list(self.config.partitions)

    def default_working_directory(self, job_id: int) -> str:
        # Made by the daemon at launch: a mkdir costs as much as a submit here.
        return f"{self.jobs_dir}/{job_id}"

    def start(self, job: JobRecord) -> JobUpdate:
        run_dir = self._dir(job)
        # Launched before (a restart between launch and commit)? The daemon finds
        # the run's record and runs nothing: never twice.
        self._send({"op": "launch", "dir": str(run_dir.path),
                    "launch": self._launch_data(job)}, job)
        self._track(run_dir)
        return JobUpdate(job.id, JobState.RUNNING, start_time=datetime.now(UTC),
                         native_id=str(job.id), run=job.requeue_count)

    def adopt(self, jobs: Sequence[JobRecord]) -> list[JobUpdate]:
        updates = []
        daemon = live_daemon(self.runs_dir)
        for job in jobs:
            run_dir = self._dir(job)
            ended = run_dir.outcome()
            if ended is not None:
                updates.append(ended)
            elif run_dir.running(daemon):
                self._track(run_dir)
            elif run_dir.started_by() is not None:
                updates.append(run_dir.lost_update())
            else:
                # Claimed but never launched: the crash came first. Launch now.
                self.start(job)
        return updates

    def poll(self) -> list[JobUpdate]:
        done: set[JobDir] = set()
        while True:
            try:
                done.add(self._ended.get_nowait())
            except queue.Empty:
                break
        if time.monotonic() >= self._next_probe:
            # A safety net for word from the daemon that never came.
            self._next_probe = time.monotonic() + PROBE_INTERVAL
            daemon = live_daemon(self.runs_dir)
            with self._lock:
                tracked = list(self._tracked)
            done.update(d for d in tracked if d.ended_or_lost(daemon))
        updates = []
        for run_dir in done:
            updates.append(run_dir.outcome() or run_dir.lost_update())
            with self._lock:
                self._tracked.discard(run_dir)
        return updates

    def cancel(self, job: JobRecord) -> None:
        run_dir = self._dir(job)
        run_dir.request_cancel()
        if run_dir.started_by() is not None:
            self._send({"op": "cancel", "dir": str(run_dir.path)}, job)

    def suspend(self, job: JobRecord) -> None:
        self._order(job, "control", suspended=True)

    def resume(self, job: JobRecord) -> None:
        self._order(job, "control", suspended=False)

    def set_time_limit(self, job: JobRecord, seconds: int | None) -> None:
        self._order(job, "control", time_limit=seconds)

    def send_signal(self, job: JobRecord, signum: int) -> None:
        self._order(job, "signal", signal=signum)

    def notify(self, job: JobRecord, message: str) -> None:
        try:
            with open(job.standard_output, "a", encoding="utf-8") as out:
                out.write(message.rstrip("\n") + "\n")
        except OSError as exc:
            raise BackendError(f"could not notify job {job.id}: {exc}") from exc

    def resources(self) -> dict[str, Any]:
        node = self.resources_of_node
        return {"nodes": [{"name": self.node, "cpus": len(node.cpus), "cpu_ids": list(node.cpus),
                           "memory": node.memory, "gpus": len(node.gpus)}]}

    def set_waker(self, waker: Callable[[], None]) -> None:
        self._waker = waker

    def close(self) -> None:
        self._daemon.close()  # the daemon and its jobs go on

    # -- helpers --------------------------------------------------------------

    def _dir(self, job: JobRecord) -> JobDir:
        return JobDir(self.runs_dir / f"{job.id}.{job.requeue_count}")

    def _track(self, run_dir: JobDir) -> None:
        with self._lock:
            self._tracked.add(run_dir)

    def _order(self, job: JobRecord, op: str, **fields: Any) -> None:
        run_dir = self._dir(job)
        # A job is RUNNING from its claim; its launch follows within moments.
        # An order given in between waits for it (the daemon then holds the
        # order until the process runs), rather than being refused.
        deadline = time.monotonic() + LAUNCH_WAIT
        while run_dir.started_by() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if not run_dir.running(live_daemon(self.runs_dir)):
            raise ConflictError(f"job {job.id} has no running process here")
        self._send({"op": op, "dir": str(run_dir.path), **fields}, job)

    def _send(self, order: dict[str, Any], job: JobRecord) -> None:
        try:
            self._daemon.send(order)
        except OSError as exc:
            raise BackendError(f"job {job.id}: could not reach the job daemon: {exc}") from exc

    def _ended_run(self, path: Path) -> None:
        self._ended.put(JobDir(path))
        self._waker()

    def _launch_data(self, job: JobRecord) -> dict[str, Any]:
        if job.spec.script is not None:
            # The daemon writes the script beside the run's record; it runs by
            # its #! line, as on Slurm.
            argv = script_argv(job.spec.script, self._dir(job).script_file)
        else:
            argv = ["/bin/bash", "-c", job.spec.command or ""]
        return {
            "argv": argv,
            "script": job.spec.script,
            "cwd": job.working_directory,
            "create_cwd": job.working_directory == self.default_working_directory(job.id),
            "env": job_environment(job, self._base_environment),
            "stdout": job.standard_output,
            "stderr": job.standard_error,
            # A requeued run keeps what earlier runs wrote, as Slurm does.
            "open_mode": "ab" if job.requeue_count or job.spec.open_mode == "append" else "wb",
            "time_limit": job.time_limit,
            "memory_limit": job_memory(job.memory, job.memory_per_cpu, job.cpus) or None,
            "memory_cgroup": self.config.memory_cgroup,
            "cpus": self._affinity(job),
            "kill_wait": self.kill_wait,
            "warn_signal": warn_signal(job),
        }

    def _affinity(self, job: JobRecord) -> list[int]:
        """The job's CPU ids that exist here (a configured node may claim more)."""
        usable = os.sched_getaffinity(0)
        return [cpu for cpu in (job.allocation or {}).get("cpus", []) if cpu in usable]


def warn_signal(job: JobRecord) -> list[int] | None:
    """[signal, seconds before the time limit] of `--signal=B:...`. Without B:
    Slurm signals the job's steps alone, never the batch script: a job here is
    its batch script, with no steps, so nothing is sent, as on Slurm for a
    script that runs no srun."""
    if job.spec.signal is None:
        return None
    warn = parse_warn_signal(job.spec.signal)
    return [warn.signum, warn.seconds] if warn.batch else None


def allocation_of(job: JobRecord) -> Allocation:
    held = job.allocation or {}
    return Allocation(cpus=tuple(held.get("cpus", ())), memory=int(held.get("memory", 0)),
                      gpus=tuple(held.get("gpus", ())))


def expected_end(job: JobRecord) -> float | None:
    """When a running job must end by its limit (unknown while suspended)."""
    if job.time_limit is None or job.start_time is None or job.state is JobState.SUSPENDED:
        return None
    return job.start_time.timestamp() + job.time_limit
