"""The Slurm poller's decisions, over a scripted cluster (no Slurm needed): one
squeue a round whatever the number of jobs, sacct only for jobs that left it,
then the wrapper's exit file, then UNKNOWN - never COMPLETED by guess."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobgate.backends.slurm.parsing import Partition, SlurmJob, Tag, job_from_sacct
from jobgate.backends.slurm.poller import (
    EXIT_LOOK_FILES,
    EXIT_PROMPTS,
    EXIT_SETTLE,
    Poller,
    Tracked,
)
from jobgate.backends.slurm.transport import AccountingUnavailable, SlurmUnreachable
from jobgate.backends.slurm.wrapper import RunDir
from jobgate.domain.job import JobUpdate
from jobgate.domain.states import JobState

GATEWAY = "gw1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class ScriptedCluster:
    """A Transport whose answers the test sets."""

    queue_jobs: list[SlurmJob] = field(default_factory=list)
    accounting: list[SlurmJob] | None = field(default_factory=list)
    reachable: bool = True
    calls: list[str] = field(default_factory=list)
    sacct_ids: list[list[str]] = field(default_factory=list)

    def queue(self, comment_prefix: str = "") -> list[SlurmJob]:
        self.calls.append("squeue")
        if not self.reachable:
            raise SlurmUnreachable("squeue: Unable to contact slurm controller")
        return [job for job in self.queue_jobs if str(job.tag).startswith(comment_prefix)]

    def ended_since(self, seconds_ago: int, native_ids: Sequence[str] = ()) -> list[SlurmJob]:
        self.calls.append("sacct")
        self.sacct_ids.append(list(native_ids))
        if self.accounting is None:
            raise AccountingUnavailable("sacct: Slurm accounting storage is disabled")
        return [job for job in self.accounting if job.native_id in native_ids]

    # the rest of the Transport protocol, unused here
    def submit(self, script: str) -> str:
        raise NotImplementedError

    def cancel(self, native_id: str) -> None: ...
    def signal(self, native_id: str, signal_name: str) -> None: ...
    def control(self, verb: str, native_id: str) -> None: ...
    def set_time_limit(self, native_id: str, seconds: int | None) -> None: ...

    def batch_script(self, native_id: str) -> str:
        return ""

    def usage(self, native_id: str, running: bool) -> dict[str, Any]:
        return {}

    def partitions(self) -> list[Partition]:
        return []

    def nodes(self) -> list[dict[str, Any]]:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def slurm_job(job_id: int, state: JobState, *, native: str | None = None, started: bool = True,
              exit_code: int | None = None, signal: int | None = None,
              gateway: str = GATEWAY, reason: str | None = None) -> SlurmJob:
    return SlurmJob(
        native_id=native or str(1000 + job_id), state=state, native_state=state.value,
        reason=reason, tag=Tag(gateway, job_id, 0), submit_time=T0,
        start_time=T0 + timedelta(seconds=1) if started and state is not JobState.PENDING
        else None,
        end_time=T0 + timedelta(seconds=2) if state.final else None,
        exit_code=exit_code, exit_code_signal=signal,
    )


def make(tmp_path: Path, cluster: ScriptedCluster, jobs: int = 1
         ) -> tuple[Poller, list[Tracked]]:
    clock = Clock()
    poller = Poller(cluster, GATEWAY, lambda _updates: None, clock=clock)
    tracked = []
    for job_id in range(1, jobs + 1):
        item = Tracked(tag=Tag(GATEWAY, job_id, 0), native_id=str(1000 + job_id),
                       run_dir=RunDir(tmp_path / f"{job_id}.0"),
                       submit_time=datetime.now(UTC), since=clock())
        poller.track(item)
        tracked.append(item)
    return poller, tracked


def states(updates: list[JobUpdate], job_id: int = 1) -> list[JobState]:
    return [u.state for u in updates if u.job_id == job_id]


def test_one_squeue_a_round_whatever_the_number_of_jobs(tmp_path: Path) -> None:
    cluster = ScriptedCluster(queue_jobs=[slurm_job(i, JobState.RUNNING) for i in range(1, 1001)])
    poller, _ = make(tmp_path, cluster, jobs=1000)
    first = poller.cycle()
    assert len(first) == 1000 and cluster.calls == ["squeue"]
    assert poller.cycle() == []  # nothing new: nothing reported
    assert cluster.calls == ["squeue", "squeue"]


def test_other_gateways_jobs_are_not_ours(tmp_path: Path) -> None:
    cluster = ScriptedCluster(queue_jobs=[
        slurm_job(1, JobState.COMPLETED, gateway="other", exit_code=0)])
    poller, _ = make(tmp_path, cluster)
    poller.snapshot.taken = -1
    assert poller.refresh().jobs == {}


def test_a_job_seen_pending_then_ended_is_reported_started_first(tmp_path: Path) -> None:
    cluster = ScriptedCluster(queue_jobs=[slurm_job(1, JobState.PENDING, reason="Priority")])
    poller, _ = make(tmp_path, cluster)
    [pending] = poller.cycle()
    assert (pending.state, pending.reason, pending.native_id) == (
        JobState.PENDING, "Priority", "1001")
    cluster.queue_jobs = [slurm_job(1, JobState.FAILED, exit_code=3, reason="NonZeroExitCode")]
    running, failed = poller.cycle()
    assert (running.state, running.start_time) == (JobState.RUNNING, T0 + timedelta(seconds=1))
    assert (failed.state, failed.exit_code, failed.reason) == (
        JobState.FAILED, 3, "NonZeroExitCode")
    assert poller.count() == 0  # a final state ends the tracking


def test_a_signal_is_named_in_the_reason(tmp_path: Path) -> None:
    cluster = ScriptedCluster(queue_jobs=[slurm_job(1, JobState.CANCELLED, signal=15)])
    poller, _ = make(tmp_path, cluster)
    *_, cancelled = poller.cycle()
    assert (cancelled.exit_code_signal, cancelled.reason) == (15, "killed by SIGTERM")


def test_nothing_is_concluded_while_squeue_fails(tmp_path: Path) -> None:
    cluster = ScriptedCluster(reachable=False)
    poller, _ = make(tmp_path, cluster)
    for _ in range(3):
        assert poller.cycle() == []
    assert poller.reachable is False and "sacct" not in cluster.calls


def test_a_job_that_left_squeue_gets_its_end_from_sacct(tmp_path: Path) -> None:
    cluster = ScriptedCluster(
        queue_jobs=[slurm_job(2, JobState.RUNNING)],
        accounting=[slurm_job(1, JobState.FAILED, exit_code=3),
                    slurm_job(3, JobState.COMPLETED, exit_code=0)])
    poller, _ = make(tmp_path, cluster, jobs=3)
    updates = poller.cycle()
    assert cluster.calls == ["squeue", "sacct"]  # one sacct for both missing jobs
    assert cluster.sacct_ids == [["1001", "1003"]]
    assert states(updates, 1) == [JobState.RUNNING, JobState.FAILED]
    assert states(updates, 3) == [JobState.RUNNING, JobState.COMPLETED]
    assert [u.exit_code for u in updates if u.job_id == 1 and u.state.final] == [3]


def test_an_exit_code_slurmdbd_lost_is_taken_from_the_exit_file(tmp_path: Path) -> None:
    # slurmrestd's slurmdb record (22.05) of a job that exited 3: FAILED, code unknown.
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"
    record = json.loads((fixture / "rest-slurmdb-job-v0.0.38.json").read_text())["jobs"][0]
    lost = replace(job_from_sacct(record), native_id="1001", tag=Tag(GATEWAY, 1, 0))
    assert (lost.state, lost.exit_code, lost.exit_code_signal) == (JobState.FAILED, None, None)
    poller, [item] = make(tmp_path, ScriptedCluster(accounting=[lost]))
    item.run_dir.path.mkdir(parents=True)
    item.run_dir.exit_file.write_text(f"{3 << 8} {int(T0.timestamp()) + 5} 0.5 0.25\n")
    ended = poller.cycle()[-1]
    assert (ended.state, ended.exit_code, ended.exit_code_signal) == (JobState.FAILED, 3, None)
    assert ended.data["slurm_job_id"] == "1001" and ended.data["cpu_user"] == 0.5


def test_a_reused_job_id_from_someone_else_is_not_our_end(tmp_path: Path) -> None:
    cluster = ScriptedCluster(accounting=[
        replace(slurm_job(1, JobState.COMPLETED, exit_code=0), tag=Tag("other", 9, 0))])
    poller, _ = make(tmp_path, cluster)
    [lost] = poller.cycle()
    assert lost.state is JobState.UNKNOWN


def test_without_accounting_the_exit_file_tells(tmp_path: Path) -> None:
    cluster = ScriptedCluster(accounting=None)
    poller, [item] = make(tmp_path, cluster)
    item.run_dir.path.mkdir(parents=True)
    item.run_dir.start_file.write_text(f"{int(T0.timestamp())}\n")
    item.run_dir.exit_file.write_text(f"{3 << 8} {int(T0.timestamp()) + 5} 0.5 0.25\n")
    running, failed = poller.cycle()
    assert running.state is JobState.RUNNING
    assert (failed.state, failed.exit_code, failed.exit_code_signal) == (JobState.FAILED, 3, None)
    assert failed.end_time == T0 + timedelta(seconds=5)
    assert failed.data["cpu_user"] == 0.5 and failed.data["source"] == "exit file"
    assert poller.accounting is False
    poller.track(Tracked(tag=Tag(GATEWAY, 2, 0), native_id="1002",
                         run_dir=RunDir(tmp_path / "2.0"), submit_time=T0, since=0.0))
    poller.cycle()
    assert cluster.calls.count("sacct") == 1  # never asked again


def test_with_no_trace_at_all_a_job_is_unknown_never_completed(tmp_path: Path) -> None:
    cluster = ScriptedCluster(accounting=[])
    poller, _ = make(tmp_path, cluster)
    [lost] = poller.cycle()
    assert lost.state is JobState.UNKNOWN and "1001" in (lost.reason or "")
    assert poller.cycle() == []  # reported once; looked for again later
    assert poller.count() == 1
    cluster.queue_jobs = [slurm_job(1, JobState.COMPLETED, exit_code=0)]
    assert JobState.COMPLETED in states(poller.cycle())  # found again: it converges


def test_a_job_submitted_during_a_squeue_is_not_missing(tmp_path: Path) -> None:
    cluster = ScriptedCluster()
    poller, [item] = make(tmp_path, cluster)
    item.since = 10**9  # tracking began after this round's squeue
    assert poller.cycle() == [] and "sacct" not in cluster.calls


def test_a_failed_sacct_concludes_nothing(tmp_path: Path) -> None:
    class Flaky(ScriptedCluster):
        def ended_since(self, seconds_ago: int, native_ids: Sequence[str] = ()
                        ) -> list[SlurmJob]:
            self.calls.append("sacct")
            raise SlurmUnreachable("sacct: Problem talking to the database")

    cluster = Flaky()
    poller, _ = make(tmp_path, cluster)
    poller.accounting = True
    assert poller.cycle() == []


# -- exit files bring the next poll forward; Slurm still decides -------------------


def write_exit(item: Tracked, raw_status: int = 0) -> None:
    item.run_dir.path.mkdir(parents=True, exist_ok=True)
    tmp = item.run_dir.exit_file.with_name("exit.tmp")
    tmp.write_text(f"{raw_status} {int(T0.timestamp()) + 5} 0.1 0.1\n")
    tmp.replace(item.run_dir.exit_file)


def test_an_exit_file_asks_for_a_poll_without_calling_slurm(tmp_path: Path) -> None:
    cluster = ScriptedCluster(queue_jobs=[slurm_job(1, JobState.RUNNING)])
    poller, [item] = make(tmp_path, cluster)
    assert poller.look_for_exits() is None
    write_exit(item)
    seen_at = poller.clock()
    due = poller.look_for_exits()
    assert due is not None and due >= seen_at + EXIT_SETTLE - 0.01  # Slurm is given a moment
    assert poller.look_for_exits() == due and cluster.calls == []
    # Slurm has not seen the end yet: a few more polls are wanted, then no more
    for _ in range(EXIT_PROMPTS):
        assert poller.look_for_exits() is not None
        poller.cycle()
    assert poller.look_for_exits() is None
    assert poller.exit_prompted_polls == EXIT_PROMPTS
    write_exit(item, 3 << 8)  # a new file (a requeued run that ended again)
    assert poller.look_for_exits() is not None


def test_the_exit_file_is_not_slurms_word(tmp_path: Path) -> None:
    # The script exited 0 (it trapped the signal), Slurm ended it on its time limit.
    cluster = ScriptedCluster(queue_jobs=[slurm_job(1, JobState.RUNNING)])
    poller, [item] = make(tmp_path, cluster)
    assert states(poller.cycle()) == [JobState.RUNNING]
    write_exit(item, 0)
    assert poller.look_for_exits() is not None
    assert poller.cycle() == []  # Slurm still says RUNNING: nothing concluded
    cluster.queue_jobs = [slurm_job(1, JobState.TIMEOUT, exit_code=0, reason="TimeLimit")]
    [ended] = poller.cycle()
    assert (ended.state, ended.reason) == (JobState.TIMEOUT, "TimeLimit")
    assert poller.count() == 0 and poller.look_for_exits() is None  # ended: no more polls


def test_a_look_stats_a_bounded_number_of_files_round_robin(tmp_path: Path) -> None:
    poller, tracked = make(tmp_path, ScriptedCluster(), jobs=EXIT_LOOK_FILES * 2 + 10)
    write_exit(tracked[-1])
    assert poller.look_for_exits() is None  # the first EXIT_LOOK_FILES jobs
    assert poller.look_for_exits() is None  # the next ones
    assert poller.look_for_exits() is not None  # the third look reaches the last job


def test_polls_are_paced_whatever_asks_for_them(tmp_path: Path) -> None:
    poller, _ = make(tmp_path, ScriptedCluster())
    clock = poller.clock
    assert isinstance(clock, Clock)
    # after a quiet spell two polls may follow at once, then one per min_interval
    assert poller.pause_before_poll() == 0
    poller.take_poll()
    assert poller.pause_before_poll() == 0
    poller.take_poll()
    pause = poller.pause_before_poll()
    assert poller.min_interval * 0.9 < pause <= poller.min_interval
    clock.now += pause
    assert poller.pause_before_poll() == 0
    poller.take_poll()
    clock.now += 3600  # a long quiet spell banks no more than the burst
    poller.take_poll()
    poller.take_poll()
    assert poller.pause_before_poll() > 0
