"""SlurmBackend: jobs handed to a real Slurm cluster, tracked by one poller.

A job handed over stays PENDING in the ledger (with its Slurm id as native_id)
until Slurm starts it: Slurm queues and schedules, jobgate does not. Each run is
submitted with the tag `jobgate:<gateway>:<job id>.<run>` as its comment, so
that after a restart, or an sbatch that timed out, the job is adopted from
squeue instead of submitted twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import signal as signals
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from jobgate.backends.base import Capabilities, Selection, refuse_unsupported
from jobgate.backends.scripts import script_argv
from jobgate.backends.slurm import commands
from jobgate.backends.slurm.importer import Importer
from jobgate.backends.slurm.parsing import Partition, SlurmJob, Tag
from jobgate.backends.slurm.poller import Poller, Tracked, update_from
from jobgate.backends.slurm.rest import RestTransport, give_to
from jobgate.backends.slurm.transport import (
    CliTransport,
    SlurmRefused,
    SlurmUnreachable,
    Transport,
)
from jobgate.backends.slurm.wrapper import RunDir, batch_script, job_environment
from jobgate.config import ClusterConfig, PartitionConfig
from jobgate.domain.job import JobRecord, JobUpdate
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import BackendError, ConflictError, InvalidSpecError, JobgateError

log = logging.getLogger(__name__)

SUPPORTED_FIELDS = frozenset({
    "name", "script", "command", "working_directory", "environment", "cluster",
    "partition", "account", "project", "nodes", "ntasks", "cpus_per_task", "memory",
    "memory_per_cpu", "time_limit", "priority", "tags", "stdout", "stderr", "comment",
    "additional_data", "hold", "gpus", "begin", "deadline", "array", "dependencies",
    "kill_on_invalid_dependency", "open_mode", "requeue", "qos", "mail_type", "mail_user",
    "signal", "exclusive", "constraint", "reservation",
})
# After the controller failed to answer, how long submissions wait before trying again.
UNREACHABLE_PAUSE = 5.0
# sbatch processes at a time (each waits mostly on slurmctld).
SUBMIT_THREADS = 8
# How long the cluster's partitions and nodes are kept before being read again.
CLUSTER_INFO_TTL = 60.0
# How long a cancel of a job not yet handed over is remembered (its start comes
# within a round or two of the engine).
CANCEL_MEMORY = 600.0


def gateway_id(home: Path, cluster: str, configured: str | None) -> str:
    """This gateway's name in the tags of its Slurm jobs: configured, or made
    once and kept in the gateway's home (so it survives restarts)."""
    if configured:
        return configured
    path = home / f"slurm-{cluster}.gateway"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        home.mkdir(parents=True, exist_ok=True)
        made = secrets.token_hex(4)
        tmp = path.with_name(path.name + f".{os.getpid()}")
        tmp.write_text(made + "\n")
        os.replace(tmp, path)
        return made


class SlurmBackend:
    """A Slurm cluster through a transport (the CLI one by default)."""

    name = "slurm"
    capabilities = Capabilities(
        verbs=frozenset({"cancel", "suspend", "resume", "signal", "notify", "modify",
                         "hold", "release", "requeue", "script", "stats"}),
        spec_fields=SUPPORTED_FIELDS,
        queues=True,
    )

    def __init__(
        self, home: Path, *, cluster: str = "slurm", config: ClusterConfig | None = None,
        transport: Transport | None = None, env: dict[str, str] | None = None,
    ) -> None:
        self.config = config or ClusterConfig(backend="slurm")
        self.cluster = cluster
        self.gateway = gateway_id(home, cluster, self.config.gateway_id)
        root = Path(self.config.job_dir) if self.config.job_dir else home / "slurm" / cluster
        self.root = root.expanduser().resolve() / self.gateway
        self.transport: Transport = transport or transport_for(self.config, env)
        self._updates: queue.SimpleQueue[JobUpdate] = queue.SimpleQueue()
        self._waker: Callable[[], None] = lambda: None
        # Outside jobs (import_jobs): batches of registry records for the engine.
        self._imported: queue.SimpleQueue[list[dict[str, Any]]] = queue.SimpleQueue()
        importer = Importer(cluster, self.gateway, self._deliver_imported) \
            if self.config.import_jobs else None
        self.poller = Poller(
            self.transport, self.gateway, self._deliver,
            accounting={"auto": None, "slurmdbd": True, "none": False}[self.config.accounting],
            min_interval=self.config.poll_interval, max_interval=self.config.poll_interval_max,
            importer=importer,
        )
        self._submitted: dict[Tag, str] = {}
        # Runs being submitted, and the threads that run sbatch.
        self._inflight: set[Tag] = set()
        self._pool: ThreadPoolExecutor | None = None
        # Runs cancelled before they had a Slurm id (monotonic time of the request).
        self._cancelled: dict[Tag, float] = {}
        self._lock = threading.Lock()
        self._checked_queue = False
        self._paused_until = 0.0
        self._info: dict[str, tuple[float, Any]] = {}
        # What the transport cannot carry out is not offered (slurmrestd 22.05:
        # no suspend, resume).
        missing: frozenset[str] = getattr(self.transport, "missing_verbs", frozenset())
        self.capabilities = replace(SlurmBackend.capabilities,
                                    verbs=SlurmBackend.capabilities.verbs - missing)

    # -- protocol -------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        refuse_unsupported(spec, self.capabilities, self.cluster)
        # What the transport cannot carry (slurmrestd: a few option forms).
        check_spec: Callable[[JobSpec], None] | None = getattr(
            self.transport, "check_spec", None)
        if check_spec is not None:
            check_spec(spec)
        if spec.working_directory is not None and not Path(spec.working_directory).is_dir():
            raise InvalidSpecError("working_directory", spec.working_directory,
                                   "no such directory on the cluster's shared file system")
        for field in ("name", "account", "stdout", "stderr"):
            value = getattr(spec, field)
            if value is not None and any(c in value for c in "\n\r\0"):
                raise InvalidSpecError(field, value, "must be a single line")
        self._check_resources(spec)

    def _check_resources(self, spec: JobSpec) -> None:
        """Refuse what no node set of the cluster could ever give (sbatch would
        refuse it later, less clearly). Unchecked when the cluster cannot be read."""
        try:
            nodes = self._cached("nodes", self.transport.nodes)
        except JobgateError:
            return
        if not nodes:
            return
        wanted_nodes = spec.nodes or 1
        if wanted_nodes > len(nodes):
            raise InvalidSpecError("nodes", spec.nodes,
                                   f"the cluster has {len(nodes)} node(s)")
        most_cpus = max(n["cpus"] or 0 for n in nodes)
        if (spec.cpus_per_task or 1) > most_cpus:
            raise InvalidSpecError("cpus_per_task", spec.cpus_per_task,
                                   f"no node of the cluster has more than {most_cpus} CPUs")
        all_cpus = sum(n["cpus"] or 0 for n in nodes)
        cpus = (spec.ntasks or 1) * (spec.cpus_per_task or 1)
        if cpus > all_cpus:
            raise InvalidSpecError("ntasks", spec.ntasks,
                                   f"the cluster has {all_cpus} CPUs in all, not {cpus}")
        most_memory = max(n["memory"] or 0 for n in nodes)
        per_node = spec.memory if spec.memory is not None \
            else (spec.memory_per_cpu or 0) * (spec.cpus_per_task or 1)
        if per_node > most_memory:
            raise InvalidSpecError("memory", f"{per_node} MiB",
                                   f"no node of the cluster has more than {most_memory} MiB")
        gpus = sum(n["gpus"] for n in nodes)
        if (spec.gpus or 0) > gpus:
            raise InvalidSpecError("gpus", spec.gpus, f"the cluster has {gpus} GPU(s) in all")

    def default_working_directory(self, job_id: int) -> str:
        return f"{self.root}/jobs/{job_id}"

    def partitions(self) -> list[PartitionConfig]:
        """The partitions jobs may ask for: those configured for this cluster, or
        else what the cluster says (read again every minute)."""
        if "partitions" in self.config.model_fields_set:
            return list(self.config.partitions)
        try:
            found = self._cached("partitions", self.transport.partitions)
        except JobgateError as exc:
            log.warning("cluster %s: partitions not readable: %s", self.cluster, exc.message)
            return list(self.config.partitions)
        return [to_partition_config(p) for p in found] or list(self.config.partitions)

    def select(
        self, pending: Sequence[JobRecord], active: Sequence[JobRecord], now: datetime
    ) -> Selection:
        # Slurm schedules: every eligible job is handed over at once, unless the
        # controller did not answer a moment ago.
        if time.monotonic() < self._paused_until:
            return Selection(start={}, reasons={job.id: "ClusterUnreachable" for job in pending})
        # Those whose sbatch is under way stay pending in the ledger until it
        # answers: not started again each round.
        with self._lock:
            inflight = set(self._inflight)
        return Selection(start={job.id: None for job in pending
                                if self.tag(job) not in inflight}, reasons={})

    def start(self, job: JobRecord) -> JobUpdate:
        tag = self.tag(job)
        try:
            adopted = self._adopt_by_tag(job, tag)
        except SlurmUnreachable as exc:
            # Not known whether the run is in Slurm already: it waits, and the
            # look is made again once the controller answers.
            return self._unreachable(job, exc)
        if adopted is not None:
            if self._cancel_requested(tag) and adopted.native_id is not None:
                self._cancel_native(adopted.native_id)
            return adopted
        if self._cancel_requested(tag):
            return JobUpdate(job.id, JobState.CANCELLED, reason="cancelled before it was "
                             "handed to Slurm", run=job.requeue_count)
        # sbatch runs on a few threads: one at a time caps the rate at one
        # sbatch's latency. The outcome (the Slurm id, or why not) comes
        # through poll(); meanwhile the job stays PENDING, and a second start
        # of the same run finds it under way.
        queued = JobUpdate(job.id, JobState.PENDING, run=job.requeue_count)
        with self._lock:
            if tag in self._inflight:
                return queued
            self._inflight.add(tag)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(SUBMIT_THREADS,
                                                thread_name_prefix=f"jobgate-sbatch-{self.cluster}")
            pool = self._pool
        pool.submit(self._submit, job, tag)
        return queued

    def _submit(self, job: JobRecord, tag: Tag) -> None:
        try:
            update = self._hand_over(job, tag)
        except Exception as exc:  # the job must hear of it, whatever went wrong
            log.exception("cluster %s: job %s could not be handed over", self.cluster, job.id)
            update = JobUpdate(job.id, JobState.FAILED, reason=f"launch failed: {exc}"[:256],
                               run=job.requeue_count)
        finally:
            with self._lock:
                self._inflight.discard(tag)
        if update is not None:
            self._deliver([update])

    def _hand_over(self, job: JobRecord, tag: Tag) -> JobUpdate | None:
        """Write the run's files and sbatch them: the job's update if it failed
        (None: handed over, its update delivered)."""
        run_dir = self.run_dir(job)
        try:
            native_id = self.transport.submit(self._prepare(job, run_dir))
        except SlurmUnreachable as exc:
            return self._unreachable(job, exc)  # it may exist nonetheless
        except SlurmRefused as exc:
            return JobUpdate(job.id, JobState.FAILED, reason=f"Slurm refused the job: "
                             f"{exc.message}"[:256], run=job.requeue_count)
        except BackendError as exc:
            return JobUpdate(job.id, JobState.FAILED, reason=exc.message[:256],
                             run=job.requeue_count)
        with self._lock:
            self._submitted[tag] = native_id
        # Delivered before the poller tracks the job: what the poller reports of
        # it next (it may have run and ended already) comes after, in the same
        # queue. Delivered after, a PENDING could follow its RUNNING in the
        # ledger and pass for a requeue, and its end be refused.
        self._deliver([JobUpdate(job.id, JobState.PENDING, native_id=native_id,
                                 run=job.requeue_count, data={"slurm_job_id": native_id})])
        self._track(job, tag, native_id, run_dir)
        if self._cancel_requested(tag):  # while sbatch ran
            self._cancel_native(native_id)
        return None

    def adopt(self, jobs: Sequence[JobRecord]) -> list[JobUpdate]:
        for job in jobs:
            if job.native_id is not None:
                self._track(job, self.tag(job), job.native_id, self.run_dir(job))
            else:
                # Claimed as started by an engine that did not know Slurm queues.
                self.start(job)
        return []

    def poll(self) -> list[JobUpdate]:
        updates = []
        while True:
            try:
                updates.append(self._updates.get_nowait())
            except queue.Empty:
                return updates

    # -- outside jobs (backends/importing.py) ----------------------------------

    @property
    def imports_jobs(self) -> bool:
        return self.poller.importer is not None

    def take_imported(self) -> list[dict[str, Any]]:
        records = []
        while True:
            try:
                records.extend(self._imported.get_nowait())
            except queue.Empty:
                return records

    def adopt_imported(self, jobs: Sequence[JobRecord]) -> None:
        if self.poller.importer is None:
            return
        self.poller.importer.adopt(jobs)
        self.poller.start()  # importing polls even while none of ours is tracked

    def _deliver_imported(self, records: list[dict[str, Any]]) -> None:
        self._imported.put(records)
        self._waker()

    def cancel(self, job: JobRecord) -> None:
        native_id = self._native_id(job)
        if native_id is None:
            # Not handed over (yet): a start under way or to come must not run it.
            now = time.monotonic()
            with self._lock:
                self._cancelled = {t: at for t, at in self._cancelled.items()
                                   if now - at < CANCEL_MEMORY}
                self._cancelled[self.tag(job)] = now
            native_id = self._native_id(job)  # unless the start just finished
            if native_id is None:
                return
        self._cancel_native(native_id)

    def suspend(self, job: JobRecord) -> None:
        self._control("suspend", job)

    def resume(self, job: JobRecord) -> None:
        self._control("resume", job)

    def hold(self, job: JobRecord, *, admin: bool = False) -> None:
        self._control("hold" if admin else "uhold", job)

    def release(self, job: JobRecord) -> None:
        self._control("release", job)

    def requeue(self, job: JobRecord, *, hold: bool = False) -> None:
        self._control("requeuehold" if hold else "requeue", job)

    def set_time_limit(self, job: JobRecord, seconds: int | None) -> None:
        native_id = self._require_native_id(job)
        self.transport.set_time_limit(native_id, seconds)

    def send_signal(self, job: JobRecord, signum: int) -> None:
        native_id = self._require_native_id(job)
        self.transport.signal(native_id, signals.Signals(signum).name.removeprefix("SIG"))

    def notify(self, job: JobRecord, message: str) -> None:
        try:
            with open(job.standard_output, "a", encoding="utf-8") as out:
                out.write(message.rstrip("\n") + "\n")
        except OSError as exc:
            raise BackendError(f"could not notify job {job.id}: {exc}") from exc

    def batch_script(self, job: JobRecord) -> str:
        """The script Slurm runs for the job (jobgate's wrapper around the user's)."""
        return self.transport.batch_script(self._require_native_id(job))

    def usage(self, job: JobRecord) -> dict[str, Any]:
        """Resource use: sstat while the job runs, sacct once it has ended."""
        return self.transport.usage(self._require_native_id(job),
                                    running=job.state in (JobState.RUNNING, JobState.SUSPENDED))

    def resources(self) -> dict[str, Any]:
        try:
            nodes = self._cached("nodes", self.transport.nodes)
        except JobgateError as exc:
            return {"nodes": [], "error": exc.message}
        found = {"nodes": nodes, "gateway": self.gateway,
                 "tracked_jobs": self.poller.count(), "calls": dict(self.poller.calls)}
        if self.poller.importer is not None:
            found["imported_jobs_watched"] = self.poller.importer.count()
        return found

    def set_waker(self, waker: Callable[[], None]) -> None:
        self._waker = waker

    def close(self) -> None:
        # Submissions not begun are dropped: their jobs are still PENDING without
        # a Slurm id in the ledger, and the next engine hands them over.
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self.poller.stop()  # the jobs go on in Slurm
        close = getattr(self.transport, "close", None)
        if close is not None:  # REST: its connections
            close()

    # -- helpers --------------------------------------------------------------

    def tag(self, job: JobRecord) -> Tag:
        return Tag(self.gateway, job.id, job.requeue_count)

    def run_dir(self, job: JobRecord) -> RunDir:
        return RunDir(self.root / "runs" / f"{job.id}.{job.requeue_count}")

    def _deliver(self, updates: list[JobUpdate]) -> None:
        for update in updates:
            self._updates.put(update)
        self._waker()

    def _track(self, job: JobRecord, tag: Tag, native_id: str, run_dir: RunDir) -> None:
        with self._lock:
            self._submitted[tag] = native_id
        self.poller.track(Tracked(tag=tag, native_id=native_id, run_dir=run_dir,
                                  submit_time=job.submit_time, since=time.monotonic()))
        self.poller.start()

    def _unreachable(self, job: JobRecord, exc: SlurmUnreachable) -> JobUpdate:
        """The job stays PENDING, and hand-overs pause a while: the controller
        did not answer. The queue is looked at again before the next try."""
        self._paused_until = time.monotonic() + UNREACHABLE_PAUSE
        self._checked_queue = False
        log.warning("cluster %s: job %s: %s", self.cluster, job.id, exc.message)
        return JobUpdate(job.id, JobState.PENDING, reason="ClusterUnreachable",
                         run=job.requeue_count)

    def _adopt_by_tag(self, job: JobRecord, tag: Tag) -> JobUpdate | None:
        """The update for a run already in Slurm, if it is: submitted by this
        process, or found in a squeue taken since this process (re)started or
        since an sbatch failed to answer.

        Raises:
            SlurmUnreachable: that squeue could not be taken.
        """
        with self._lock:
            native_id = self._submitted.get(tag)
        if native_id is not None:
            return JobUpdate(job.id, JobState.PENDING, native_id=native_id,
                             run=job.requeue_count)
        if not self._checked_queue:
            self.poller.refresh()
            self._checked_queue = True
        found: SlurmJob | None = self.poller.snapshot.jobs.get(tag)
        if found is None:
            return None
        log.info("job %s: adopting Slurm job %s (tag %s)", job.id, found.native_id, tag)
        run_dir = self.run_dir(job)
        self._track(job, tag, found.native_id, run_dir)
        tracked = self.poller.tracked(tag)
        if tracked is None:
            return None
        return update_from(found, tracked)

    def _prepare(self, job: JobRecord, run_dir: RunDir) -> str:
        """The run's batch script, once its directory and the default working
        directory (if it is the job's) are made.

        Raises:
            BackendError: the working directory is gone, or a directory cannot be made.
        """
        if job.working_directory == self.default_working_directory(job.id):
            Path(job.working_directory).mkdir(parents=True, exist_ok=True)
        elif not Path(job.working_directory).is_dir():
            raise BackendError(f"launch failed: the working directory "
                               f"{job.working_directory} does not exist")
        script = job.spec.script
        # A command runs with bash -c, as on the local cluster.
        argv = script_argv(script, run_dir.script) if script is not None \
            else ["/bin/bash", "-c", job.spec.command or ""]
        try:
            options = commands.sbatch_options(job, self.tag(job))
        except ValueError as exc:
            raise BackendError(f"job {job.id}: {exc}") from exc
        try:
            run_dir.make()
        except OSError as exc:
            raise BackendError(f"job {job.id}: cannot make {run_dir.path}: {exc}") from exc
        job_user = getattr(self.transport, "job_user", None)
        if job_user is not None:  # REST: jobs run as that user, who must write there
            made = [run_dir.path]
            if job.working_directory == self.default_working_directory(job.id):
                made.append(Path(job.working_directory))
            try:
                give_to(job_user, made)
            except OSError as exc:
                raise BackendError(f"job {job.id}: cannot hand {run_dir.path} to "
                                   f"{job_user}: {exc}") from exc
        return batch_script(options, run_dir, argv, script=script, env=job_environment(job))

    def _native_id(self, job: JobRecord) -> str | None:
        if job.native_id is not None:
            return job.native_id
        with self._lock:
            return self._submitted.get(self.tag(job))

    def _require_native_id(self, job: JobRecord) -> str:
        native_id = self._native_id(job)
        if native_id is None:
            raise ConflictError(f"job {job.id} has not been handed to Slurm yet")
        return native_id

    def _cancel_requested(self, tag: Tag) -> bool:
        with self._lock:
            return tag in self._cancelled

    def _cancel_native(self, native_id: str) -> None:
        with contextlib.suppress(ConflictError):  # already ended: the poller says how
            self.transport.cancel(native_id)
        self.poller.wake()

    def _control(self, verb: str, job: JobRecord) -> None:
        self.transport.control(verb, self._require_native_id(job))
        self.poller.wake()

    def _cached(self, key: str, read: Callable[[], Any]) -> Any:
        now = time.monotonic()
        hit = self._info.get(key)
        if hit is not None and now - hit[0] < CLUSTER_INFO_TTL:
            return hit[1]
        value = read()
        self._info[key] = (now, value)
        return value


def transport_for(config: ClusterConfig, env: dict[str, str] | None = None) -> Transport:
    """The transport a cluster's configuration names."""
    if config.transport == "rest":
        return RestTransport.from_config(config, env)
    return CliTransport(env=env)


def to_partition_config(partition: Partition) -> PartitionConfig:
    return PartitionConfig(
        name=partition.name, default=partition.default, max_time=partition.max_time,
        default_time=partition.default_time, max_cpus_per_job=partition.max_cpus_per_job,
        max_memory_per_job=partition.max_memory_per_job, priority_tier=partition.priority_tier,
    )
