"""The Slurm backend's hand-over, over a scripted cluster (no Slurm needed): the
order in which what it learns of a job reaches the engine."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from test_slurm_poller import GATEWAY, ScriptedCluster, slurm_job

from jobgate.backends.slurm import SlurmBackend
from jobgate.backends.slurm.parsing import SlurmJob
from jobgate.backends.slurm.poller import Tracked
from jobgate.backends.slurm.transport import SlurmUnreachable
from jobgate.config import ClusterConfig
from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState


class SubmittingCluster(ScriptedCluster):
    """Job 1 is in squeue, ended, once sbatch was called (it ran at once)."""

    def submit(self, script: str) -> str:
        self.calls.append("sbatch")
        return "1001"

    def queue(self, comment_prefix: str = "") -> list[SlurmJob]:
        self.queue_jobs = [slurm_job(1, JobState.COMPLETED, exit_code=0)] \
            if "sbatch" in self.calls else []
        return super().queue(comment_prefix)


def record(tmp_path: Path, job_id: int = 1) -> JobRecord:
    spec = JobSpec.parse({"command": "true"})
    return JobRecord(
        id=job_id, name="batch", state=JobState.PENDING, state_reason=None, held=False,
        user_name="tester", cluster="slurm", partition="debug", account=None, num_nodes=1,
        ntasks=1, cpus_per_task=1, memory=None, memory_per_cpu=None, gpus=0, time_limit=None,
        priority=0, tags=[], comment=None, working_directory=str(tmp_path),
        standard_output=str(tmp_path / "out"), standard_error=str(tmp_path / "err"),
        submit_time=datetime.now(UTC), start_time=None, end_time=None, exit_code=None,
        exit_code_signal=None, requeue_count=0, native_id=None, spec=spec,
    )


def test_the_slurm_id_reaches_the_engine_before_anything_the_poller_sees(
        tmp_path: Path) -> None:
    # The job ran at once: the poller's first look at it, right as tracking
    # begins (its thread may poll at that moment), already finds it ended.
    cluster = SubmittingCluster()
    backend = SlurmBackend(tmp_path / "home", config=ClusterConfig(
        backend="slurm", gateway_id=GATEWAY, job_dir=str(tmp_path / "shared")),
        transport=cluster)
    poller = backend.poller
    track = poller.track

    def track_and_poll_at_once(item: Tracked) -> None:
        track(item)
        poller.deliver(poller.cycle())

    poller.track = track_and_poll_at_once  # type: ignore[method-assign]
    poller.start = lambda: None  # type: ignore[method-assign]
    backend.start(record(tmp_path))
    backend.close()  # waits for the hand-over
    updates = backend.poll()
    assert [(u.state, u.native_id) for u in updates] == [
        (JobState.PENDING, "1001"), (JobState.RUNNING, "1001"), (JobState.COMPLETED, "1001")]


class DownCluster(SubmittingCluster):
    """The controller does not answer until `up` is set."""

    up = False

    def queue(self, comment_prefix: str = "") -> list[SlurmJob]:
        if not self.up:
            raise SlurmUnreachable("squeue: Unable to contact slurm controller")
        return super().queue(comment_prefix)


def test_a_job_waits_while_the_controller_does_not_answer(tmp_path: Path) -> None:
    # Before its first hand-over the backend looks for the run in squeue (it may
    # be there from before a restart): no answer is no reason to fail the job.
    cluster = DownCluster()
    backend = SlurmBackend(tmp_path / "home", config=ClusterConfig(
        backend="slurm", gateway_id=GATEWAY, job_dir=str(tmp_path / "shared")),
        transport=cluster)
    backend.poller.start = lambda: None  # type: ignore[method-assign]
    job = record(tmp_path)
    update = backend.start(job)
    assert (update.state, update.reason) == (JobState.PENDING, "ClusterUnreachable")
    assert "sbatch" not in cluster.calls
    # Hand-overs pause a while; once the controller answers, the job goes.
    assert backend.select([job], [], datetime.now(UTC)).reasons == {1: "ClusterUnreachable"}
    cluster.up = True
    backend._paused_until = 0.0
    assert backend.start(job).state is JobState.PENDING
    backend.close()
    assert "sbatch" in cluster.calls
