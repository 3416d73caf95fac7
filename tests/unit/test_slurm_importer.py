"""Importing outside Slurm jobs: the record of each job of the real squeue and
sacct samples (tests/fixtures/slurm/), as the registry reads it, and the
importer's decisions over a scripted cluster whose answers are those samples:
one squeue and at most one sacct a cycle, unchanged jobs sent once, ends from
sacct laid over the last record, never a guessed COMPLETED."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobgate.backends.slurm.importer import (
    IMPORTED_FROM,
    RAW_KEYS,
    Importer,
    is_imported,
    record_from_ledger,
    record_from_squeue,
)
from jobgate.backends.slurm.parsing import (
    Partition,
    SlurmJob,
    Tag,
    job_from_squeue,
    parse_sacct_text,
    parse_squeue,
)
from jobgate.backends.slurm.poller import Poller, Tracked
from jobgate.backends.slurm.transport import AccountingUnavailable, SlurmUnreachable
from jobgate.backends.slurm.wrapper import RunDir
from jobgate.domain.job import JobRecord
from jobgate.domain.registry import exit_status, ledger_columns, parse_record
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import InvalidSpecError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"
GATEWAY = "fixture"


def sample(name: str) -> dict[str, SlurmJob]:
    return {job.native_id: job for job in parse_squeue((FIXTURES / name).read_text())}


SQUEUE = sample("squeue-22.05.json")
SACCT = {job.native_id: job for job in
         parse_sacct_text((FIXTURES / "sacct-text-22.05.txt").read_text())}


def columns(job: SlurmJob) -> dict[str, Any]:
    """What the registry stores of a job's record (the API's path)."""
    return ledger_columns(parse_record(record_from_squeue(job, "hpc")))


# -- records -----------------------------------------------------------------------


def test_every_job_of_the_sample_is_a_record_the_registry_takes() -> None:
    for job in SQUEUE.values():
        stored = columns(job)
        assert stored["native_id"] == job.native_id and stored["cluster"] == "hpc"
        assert stored["state"] == job.state.value
        extra = stored["registry_data"]["additional_data"]
        assert extra["imported_from"] == IMPORTED_FROM and extra["cluster"] == "hpc"
        assert extra["slurm_job_id"] == job.native_id and extra["slurm_cluster"] == "test"


def test_a_job_that_exited_3_is_failed_with_exit_code_3() -> None:
    stored = columns(SQUEUE["2"])  # squeue's raw wait status 768
    assert (stored["state"], stored["exit_code"], stored["exit_code_signal"]) == (
        "FAILED", 3, None)
    assert stored["state_reason"] == "NonZeroExitCode"
    assert (stored["user_name"], stored["partition"], stored["account"]) == (
        "root", "debug", "root")
    assert (stored["num_nodes"], stored["cpus_per_task"], stored["memory"]) == (1, 1, 256)
    assert stored["time_limit"] == 600 and stored["working_directory"] == "/tmp"
    assert stored["start_time"] is not None and stored["end_time"] is not None
    assert stored["registry_data"]["nodes"] == "vm"
    assert stored["registry_data"]["allocated_resources"] == "cpu=1,mem=256M,node=1,billing=1"


def test_completed_signalled_and_out_of_memory_exits() -> None:
    assert (columns(SQUEUE["1"])["exit_code"], columns(SQUEUE["1"])["exit_code_signal"]) == (
        0, None)
    cancelled = columns(SQUEUE["4"])  # raw status 15: SIGTERM
    assert (cancelled["state"], cancelled["exit_code"], cancelled["exit_code_signal"]) == (
        "CANCELLED", None, 15)
    oom = columns(SQUEUE["18"])  # Slurm's pseudo-signal: no exit code, no signal
    assert (oom["state"], oom["exit_code"], oom["exit_code_signal"]) == (
        "OUT_OF_MEMORY", None, None)


def test_a_running_job_has_no_end_and_no_exit_code() -> None:
    stored = columns(SQUEUE["22"])
    assert (stored["state"], stored["end_time"], stored["exit_code"]) == ("RUNNING", None, None)
    assert stored["working_directory"] == "/srv/jobs"


def test_array_tasks_are_keyed_by_group_and_the_waiting_rest_by_job_id() -> None:
    task = columns(SQUEUE["24"])
    assert (task["array_job_id"], task["array_task_id"], task["native_id"]) == (23, 0, "24")
    last = columns(SQUEUE["6"])  # the array's own id went to its last task
    assert (last["array_job_id"], last["array_task_id"]) == (6, 9)
    waiting = columns(SQUEUE["23"])
    assert (waiting["array_job_id"], waiting["array_task_id"]) == (None, None)
    assert waiting["state"] == "PENDING" and waiting["state_reason"] == "JobArrayTaskLimit"
    extra = waiting["registry_data"]["additional_data"]
    assert (extra["array_job_id"], extra["array_tasks"]) == (23, "1-5%1")
    # Not placed yet: the node count and the resources asked for.
    assert waiting["num_nodes"] == 1 and "nodes" not in waiting["registry_data"]
    assert waiting["cpus_per_task"] == 1 and waiting["start_time"] is None


def test_another_users_job_is_that_users() -> None:
    stored = columns(SQUEUE["20"])
    assert (stored["user_name"], stored["exit_code"], stored["account"]) == (
        "slurmtest", 4, None)


class Reads(dict[str, Any]):
    """A job object that notes which of its fields are read."""

    read: set[str]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def test_the_fingerprint_covers_every_field_a_record_is_made_from() -> None:
    for job in SQUEUE.values():
        raw = Reads(job.raw)
        raw.read = set()
        record_from_squeue(job_from_squeue(raw), "hpc")
        assert raw.read <= set(RAW_KEYS), raw.read - set(RAW_KEYS)


def test_exit_status_of_a_record() -> None:
    assert exit_status(None) == (None, None)
    assert exit_status(3) == (3, None)
    assert exit_status("3:0") == (3, None)
    assert exit_status("0:9") == (None, 9)
    for wrong in (-1, 256, "3:x", "abc", "1:2:3", True):
        with pytest.raises(InvalidSpecError):
            exit_status(wrong)


def ledger_job(record: dict[str, Any], job_id: int = 7) -> JobRecord:
    """The ledger's record of a job stored from `record` (as the registry writes it)."""
    stored = ledger_columns(parse_record(record))
    keep = ("native_id", "array_job_id", "array_task_id", "name", "cluster", "partition",
            "account", "user_name", "state_reason", "held", "num_nodes", "ntasks",
            "cpus_per_task", "memory", "gpus", "time_limit", "working_directory",
            "submit_time", "start_time", "end_time", "exit_code", "exit_code_signal",
            "registry_data")
    return JobRecord(
        id=job_id, state=JobState(stored["state"]), memory_per_cpu=None, priority=0, tags=[],
        comment=None, standard_output="", standard_error="", requeue_count=0,
        spec=JobSpec(command=""), source="registry", **{key: stored[key] for key in keep})


def test_the_record_rebuilt_from_the_ledger_stores_the_same() -> None:
    for native_id in ("22", "24", "23"):
        record = record_from_squeue(SQUEUE[native_id], "hpc")
        job = ledger_job(record)
        assert is_imported(job)
        assert columns(SQUEUE[native_id]) == ledger_columns(parse_record(record_from_ledger(job)))
    pushed = ledger_job({"cluster_id": "hpc", "job_id": 5, "user": "ana",
                         "submitted": "2026-01-01T00:00:00Z"})
    assert not is_imported(pushed)  # pushed over HTTP: not the importer's


# -- the importer in the poller ----------------------------------------------------------


@dataclass
class ScriptedCluster:
    """A Transport answering with jobs of the samples, as the test sets them."""

    queue_jobs: list[SlurmJob] = field(default_factory=list)
    accounting: list[SlurmJob] | None = field(default_factory=list)
    sacct_fails: bool = False
    calls: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    sacct_ids: list[list[str]] = field(default_factory=list)

    def queue(self, comment_prefix: str = "") -> list[SlurmJob]:
        self.calls.append("squeue")
        self.prefixes.append(comment_prefix)
        return [job for job in self.queue_jobs
                if str(job.raw.get("comment") or "").startswith(comment_prefix)]

    def ended_since(self, seconds_ago: int, native_ids: Sequence[str] = ()) -> list[SlurmJob]:
        self.calls.append("sacct")
        self.sacct_ids.append(list(native_ids))
        if self.sacct_fails:
            raise SlurmUnreachable("sacct: Problem talking to the database")
        if self.accounting is None:
            raise AccountingUnavailable("sacct: Slurm accounting storage is disabled")
        return [job for job in self.accounting if job.native_id in native_ids]

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


def importing(cluster: ScriptedCluster) -> tuple[Poller, list[list[dict[str, Any]]], Clock]:
    batches: list[list[dict[str, Any]]] = []
    clock = Clock()
    importer = Importer("hpc", GATEWAY, batches.append, clock=clock)
    return Poller(cluster, GATEWAY, lambda _u: None, clock=clock, importer=importer), \
        batches, clock


LIVE = sample("squeue-live-22.05.json")  # jobs 1-8 tagged jobgate:<gateway>:..., 9 not


def test_without_import_only_the_gateways_jobs_are_read() -> None:
    cluster = ScriptedCluster(queue_jobs=list(LIVE.values()))
    poller = Poller(cluster, GATEWAY, lambda _u: None, clock=Clock())
    poller.track(Tracked(tag=Tag(GATEWAY, 1, 0), native_id="2", run_dir=RunDir(Path("/no")),
                         submit_time=datetime.now(UTC), since=0.0))
    poller.cycle()
    assert cluster.prefixes == [f"jobgate:{GATEWAY}:"] and poller.snapshot.others == []


def test_outside_jobs_are_sent_once_each_and_the_gateways_never() -> None:
    cluster = ScriptedCluster(queue_jobs=list(LIVE.values()))
    poller, batches, _ = importing(cluster)
    assert poller.cycle() == []  # nothing of the gateway's is tracked
    # Job 9 has a comment of its own; job 1 is another gateway's (tag jobgate:abc:...).
    assert [[r["job_id"] for r in batch] for batch in batches] == [[1, 9]]
    assert cluster.prefixes == [""] and cluster.calls == ["squeue"]
    for _ in range(3):
        poller.cycle()
    assert len(batches) == 1 and cluster.calls == ["squeue"] * 4  # unchanged: nothing sent
    started = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    cluster.queue_jobs = [job_from_squeue({**LIVE["9"].raw, "job_state": "RUNNING",
                                           "state_reason": "None", "start_time": started})]
    poller.cycle()
    assert [(r["job_id"], r["state"]) for r in batches[1]] == [(9, "RUNNING")]
    # Job 1 left squeue ended (seen FAILED): let go without asking sacct.
    assert "sacct" not in cluster.calls


def running(native_id: str) -> SlurmJob:
    """Sample job `native_id` as squeue showed it while it ran."""
    return job_from_squeue({**SQUEUE[native_id].raw, "job_state": "RUNNING",
                            "state_reason": "None", "exit_code": 0})


def test_a_job_that_left_squeue_running_ends_through_the_one_sacct(tmp_path: Path) -> None:
    ours = replace(running("1"), tag=Tag(GATEWAY, 1, 0))
    cluster = ScriptedCluster(queue_jobs=[ours, running("2")], accounting=[
        replace(SACCT["1"], tag=Tag(GATEWAY, 1, 0)), replace(SACCT["2"], tag=None)])
    poller, batches, clock = importing(cluster)
    poller.track(Tracked(tag=Tag(GATEWAY, 1, 0), native_id="1", run_dir=RunDir(tmp_path),
                         submit_time=datetime.now(UTC), since=clock()))
    assert [u.state for u in poller.cycle()] == [JobState.RUNNING]
    assert [(r["job_id"], r["state"]) for r in batches[0]] == [(2, "RUNNING")]
    cluster.queue_jobs = []  # both left squeue (MinJobAge) before a cycle saw them end
    updates = poller.cycle()
    assert cluster.calls == ["squeue", "squeue", "sacct"]  # one sacct for both
    assert cluster.sacct_ids == [["1", "2"]]
    assert [(u.state, u.exit_code) for u in updates] == [(JobState.FAILED, 3)]
    [ended] = batches[1]
    assert (ended["state"], ended["exit_code"], ended["reason"]) == ("FAILED", "3:0", None)
    # What sacct's text lacks comes from the record sent before.
    assert (ended["nodes"], ended["working_directory"], ended["time_limit"]) == (
        "vm", "/tmp", 600)
    assert ended["additional_data"]["slurm_state"] == "FAILED"
    poller.cycle()
    assert cluster.calls.count("sacct") == 1 and len(batches) == 2  # both let go


def test_without_accounting_a_job_gone_from_squeue_is_unknown_never_completed() -> None:
    cluster = ScriptedCluster(queue_jobs=[running("3")], accounting=None)
    poller, batches, _ = importing(cluster)
    poller.cycle()
    cluster.queue_jobs = []
    poller.cycle()
    lost = batches[-1][0]
    assert lost["state"] == "UNKNOWN" and "no accounting" in lost["reason"]
    poller.cycle()
    assert cluster.calls.count("sacct") == 1 and poller.importer.count() == 0  # type: ignore[union-attr]


def test_until_sacct_has_its_end_a_job_is_unknown_then_it_converges() -> None:
    cluster = ScriptedCluster(queue_jobs=[running("3")], accounting=[])
    poller, batches, clock = importing(cluster)
    poller.cycle()
    cluster.queue_jobs = []
    poller.cycle()
    assert batches[-1][0]["state"] == "UNKNOWN"
    poller.cycle()
    assert cluster.calls.count("sacct") == 1  # looked for again later, not every cycle
    cluster.accounting = [replace(SACCT["3"], tag=None)]
    clock.now += 31
    poller.cycle()
    done = batches[-1][0]
    assert (done["state"], done["exit_code"]) == ("COMPLETED", "0:0")


def test_a_failed_sacct_concludes_nothing_and_asks_again() -> None:
    cluster = ScriptedCluster(queue_jobs=[running("3")], sacct_fails=True)
    poller, batches, _ = importing(cluster)
    poller.accounting = True
    poller.cycle()
    cluster.queue_jobs = []
    poller.cycle()
    poller.cycle()
    assert len(batches) == 1 and cluster.calls.count("sacct") == 2


def test_a_reused_id_of_the_gateways_own_job_is_not_the_outside_jobs_end() -> None:
    ours = replace(SACCT["3"], tag=Tag(GATEWAY, 9, 0))
    cluster = ScriptedCluster(queue_jobs=[running("3")], accounting=[ours])
    poller, batches, _ = importing(cluster)
    poller.cycle()
    cluster.queue_jobs = []
    poller.cycle()
    assert batches[-1][0]["state"] == "UNKNOWN"


def test_after_a_restart_an_imported_job_that_left_squeue_gets_its_end() -> None:
    job = ledger_job(record_from_squeue(running("2"), "hpc"))
    cluster = ScriptedCluster(accounting=[replace(SACCT["2"], tag=None)])
    poller, batches, _ = importing(cluster)
    poller.importer.adopt([job])  # type: ignore[union-attr]
    poller.cycle()
    [ended] = batches[-1]
    assert (ended["job_id"], ended["state"], ended["exit_code"]) == (2, "FAILED", "3:0")
    assert ended["nodes"] == "vm" and ended["allocated_resources"].startswith("cpu=1")
    assert cluster.sacct_ids == [["2"]]


def test_an_adopted_job_listed_by_a_squeue_begun_before_is_not_missing() -> None:
    job = ledger_job(record_from_squeue(running("2"), "hpc"))
    cluster = ScriptedCluster()
    poller, batches, clock = importing(cluster)
    poller.importer.adopt([job])  # type: ignore[union-attr]
    poller.importer.observe([], datetime.now(UTC), taken=clock() - 1)  # type: ignore[union-attr]
    assert poller.importer.due() == []  # type: ignore[union-attr]
    assert batches == []
