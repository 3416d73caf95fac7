"""Slurm's outputs (real ones, captured from Slurm 22.05.8) read into jobgate's terms."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobgate.backends.slurm.parsing import (
    STATE_TABLE,
    ExitStatus,
    SlurmJob,
    Tag,
    decode_exit_pair,
    decode_wait_status,
    latest_records,
    map_reason,
    map_state,
    parse_partitions,
    parse_sacct_json,
    parse_sacct_text,
    parse_sinfo,
    parse_squeue,
    parse_squeue_text,
    parse_sstat,
    parse_tag,
)
from jobgate.domain.states import JobState
from jobgate.errors import BackendError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# -- states ------------------------------------------------------------------------


@pytest.mark.parametrize(("native", "state"), [
    ("PENDING", JobState.PENDING), ("RUNNING", JobState.RUNNING),
    ("SUSPENDED", JobState.SUSPENDED), ("COMPLETING", JobState.COMPLETING),
    ("COMPLETED", JobState.COMPLETED), ("CANCELLED", JobState.CANCELLED),
    ("CANCELLED by 0", JobState.CANCELLED), ("FAILED", JobState.FAILED),
    ("TIMEOUT", JobState.TIMEOUT), ("NODE_FAIL", JobState.NODE_FAIL),
    ("PREEMPTED", JobState.PREEMPTED), ("BOOT_FAIL", JobState.BOOT_FAIL),
    ("DEADLINE", JobState.DEADLINE), ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
    ("CONFIGURING", JobState.PENDING), ("REQUEUED", JobState.PENDING),
    ("REQUEUE_HOLD", JobState.PENDING), ("SPECIAL_EXIT", JobState.PENDING),
    ("RESV_DEL_HOLD", JobState.PENDING), ("STOPPED", JobState.SUSPENDED),
    ("STAGE_OUT", JobState.COMPLETING), ("SIGNALING", JobState.RUNNING),
    ("RESIZING", JobState.RUNNING), ("REVOKED", JobState.CANCELLED),
    ("LAUNCH_FAILED", JobState.FAILED),
    # short codes (text output)
    ("PD", JobState.PENDING), ("R", JobState.RUNNING), ("CG", JobState.COMPLETING),
    ("CD", JobState.COMPLETED), ("OOM", JobState.OUT_OF_MEMORY), ("TO", JobState.TIMEOUT),
    # 23.02+ lists: a flag beside the base state decides, a meaningless one does not
    (["PENDING", "REQUEUED"], JobState.PENDING), (["RUNNING", "COMPLETING"], JobState.COMPLETING),
    (["COMPLETED", "STAGE_OUT"], JobState.COMPLETING), (["RUNNING", "UPDATE_DB"], JobState.RUNNING),
    (["FAILED"], JobState.FAILED),
])
def test_every_slurm_state_maps(native: str | list[str], state: JobState) -> None:
    assert map_state(native) is state


def test_the_table_covers_every_jobgate_state_but_unknown() -> None:
    assert set(STATE_TABLE.values()) == set(JobState) - {JobState.UNKNOWN}


def test_an_unmapped_state_is_unknown_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert map_state("WARPED") is JobState.UNKNOWN
    assert "WARPED" in caplog.text


@pytest.mark.parametrize(("reason", "mapped"), [
    ("None", None), ("", None), (None, None), ("Priority", "Priority"),
    ("JobHeldUser", "JobHeldUser"), ("DependencyNeverSatisfied", "DependencyNeverSatisfied"),
])
def test_reasons_keep_slurms_names(reason: str | None, mapped: str | None) -> None:
    assert map_reason(reason) == mapped


# -- exit codes ----------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "status"), [
    (0, ExitStatus(0, None)), (768, ExitStatus(3, None)), (1024, ExitStatus(4, None)),
    (35072, ExitStatus(137, None)),  # exit 137 is not SIGKILL
    (15, ExitStatus(None, 15)), (9, ExitStatus(None, 9)),
    (253, ExitStatus(None, None)),  # Slurm's pseudo-signal for out of memory
    (None, ExitStatus(None, None)), (-1, ExitStatus(None, None)),
])
def test_raw_wait_statuses_are_decoded(raw: int | None, status: ExitStatus) -> None:
    assert decode_wait_status(raw) == status


@pytest.mark.parametrize(("text", "status"), [
    ("3:0", ExitStatus(3, None)), ("0:0", ExitStatus(0, None)), ("0:9", ExitStatus(None, 9)),
    ("0:125", ExitStatus(None, None)), ("junk", ExitStatus(None, None)),
])
def test_exit_pairs_are_decoded(text: str, status: ExitStatus) -> None:
    assert decode_exit_pair(text) == status


# -- the tag ---------------------------------------------------------------------------


def test_tags_round_trip_and_others_comments_are_not_tags() -> None:
    tag = Tag("a395abc7", 42, 3)
    assert str(tag) == "jobgate:a395abc7:42.3"
    assert parse_tag(str(tag)) == tag
    assert parse_tag("jobgate:fixture:5.1|with a bar") == Tag("fixture", 5, 1)
    for other in ("", None, "other comment", "jobgate:x:1", "see jobgate:x:1.0"):
        assert parse_tag(other) is None


# -- squeue ----------------------------------------------------------------------------


def test_squeue_of_ended_jobs() -> None:
    jobs = {job.native_id: job for job in parse_squeue(fixture("squeue-ended-22.05.json"))}
    failed = jobs["2"]
    assert (failed.state, failed.exit_code, failed.exit_code_signal) == (JobState.FAILED, 3, None)
    assert failed.reason == "NonZeroExitCode"
    assert failed.tag == Tag("fixture", 1, 0)
    assert failed.start_time == failed.end_time == datetime.fromtimestamp(1795450614, UTC)
    assert (jobs["3"].state, jobs["3"].exit_code) == (JobState.COMPLETED, 0)
    oom = jobs["6"]
    assert (oom.state, oom.exit_code, oom.exit_code_signal) == (JobState.OUT_OF_MEMORY, None, None)
    timeout = jobs["7"]
    assert (timeout.state, timeout.reason, timeout.exit_code_signal) == (
        JobState.TIMEOUT, "TimeLimit", 15)
    killed = jobs["8"]
    assert (killed.state, killed.exit_code, killed.exit_code_signal) == (JobState.FAILED, None, 9)
    assert jobs["9"].tag is None  # someone else's comment


def test_squeue_of_live_jobs_keeps_only_meaningful_times() -> None:
    jobs = {job.native_id: job for job in parse_squeue(fixture("squeue-live-22.05.json"))}
    suspended = jobs["3"]
    assert suspended.state is JobState.SUSPENDED
    assert suspended.start_time is not None
    assert suspended.end_time is None  # a live job's end_time is only its projected end
    held = jobs["4"]
    assert (held.state, held.reason, held.held) == (JobState.PENDING, "JobHeldUser", True)
    waiting = jobs["5"]
    assert (waiting.state, waiting.reason, waiting.held) == (JobState.PENDING, "Dependency", False)
    resources = jobs["9"]
    assert resources.reason == "Resources"
    assert resources.start_time is None  # only Slurm's estimate while pending
    assert jobs["7"].state is JobState.RUNNING
    assert all(job.exit_code is None for job in jobs.values() if not job.state.final)


def test_squeue_of_the_reference_cluster() -> None:
    jobs = {job.native_id: job for job in parse_squeue(fixture("squeue-22.05.json"))}
    assert (jobs["4"].state, jobs["4"].exit_code_signal) == (JobState.CANCELLED, 15)
    never_ran = jobs["17"]  # afterok on a failed job, killed by kill_invalid_depend
    assert (never_ran.state, never_ran.reason) == (JobState.CANCELLED, "DependencyNeverSatisfied")
    assert never_ran.start_time is None
    assert jobs["21"].start_time is None  # cancelled while pending
    assert (jobs["20"].state, jobs["20"].exit_code) == (JobState.FAILED, 4)
    meta = jobs["23"]  # a pending array's meta record
    assert (meta.state, meta.reason) == (JobState.PENDING, "JobArrayTaskLimit")
    assert jobs["5"].restart_count == 1


def test_slurmrestd_job_objects_are_squeues() -> None:
    [job] = parse_squeue(fixture("rest-get-job-v0.0.38.json"))
    assert (job.native_id, job.state, job.name) == ("22", JobState.RUNNING, "sample-running")


def test_errors_in_a_document_are_raised() -> None:
    with pytest.raises(BackendError, match="Unable to find JobId=999999"):
        parse_squeue(fixture("rest-get-unknown-job-v0.0.38.json"))
    with pytest.raises(BackendError, match="not JSON"):
        parse_squeue("squeue: error: Unable to contact slurm controller")


# -- sacct -----------------------------------------------------------------------------


def test_sacct_text_has_the_right_exit_codes() -> None:
    jobs = {job.native_id: job for job in parse_sacct_text(fixture("sacct-text-22.05.txt"))}
    assert (jobs["2"].state, jobs["2"].exit_code) == (JobState.FAILED, 3)
    assert jobs["2"].tag == Tag("fixture", 1, 0)
    assert (jobs["6"].state, jobs["6"].exit_code, jobs["6"].exit_code_signal) == (
        JobState.OUT_OF_MEMORY, None, None)
    assert jobs["6"].tag == Tag("fixture", 5, 1)  # a comment holding the delimiter
    assert (jobs["8"].exit_code, jobs["8"].exit_code_signal) == (None, 9)
    assert jobs["9"].state is JobState.CANCELLED  # "CANCELLED by 0"
    assert jobs["9"].start_time == datetime.fromtimestamp(1795450690, UTC)
    assert jobs["4"].end_time == datetime.fromtimestamp(1795450703, UTC)


def test_sacct_text_that_is_not_sacct_is_refused() -> None:
    with pytest.raises(BackendError):
        parse_sacct_text("1|FAILED|3:0\n")


def test_sacct_json_works_around_the_22_05_exit_code_bug() -> None:
    records = parse_sacct_json(fixture("sacct-22.05.json"))
    jobs = latest_records(records)
    # Job 2 exited 3; 22.05's --json says SUCCESS/0. Unknown beats wrong.
    assert (jobs["2"].state, jobs["2"].exit_code) == (JobState.FAILED, None)
    assert (jobs["1"].state, jobs["1"].exit_code) == (JobState.COMPLETED, 0)
    assert (jobs["4"].state, jobs["4"].exit_code) == (JobState.CANCELLED, None)
    assert (jobs["18"].state, jobs["18"].exit_code_signal) == (JobState.OUT_OF_MEMORY, None)
    # A requeued job is listed once per run; the last is the one that counts.
    assert [r.state for r in records if r.native_id == "5"] == [
        JobState.PENDING, JobState.CANCELLED]
    assert jobs["5"].state is JobState.CANCELLED
    assert jobs["22"].state is JobState.RUNNING and jobs["22"].end_time is None


# -- the cluster -------------------------------------------------------------------------


def test_partitions_and_their_limits() -> None:
    debug, long = parse_partitions(fixture("scontrol-partitions-22.05.txt"))
    assert (debug.name, debug.default, debug.up) == ("debug", True, True)
    assert (debug.max_time, debug.default_time) == (3600, 600)
    assert (long.name, long.default, long.max_time, long.default_time) == (
        "long", False, 7 * 86400, 3600)
    assert debug.max_cpus_per_job == debug.total_cpus > 0
    assert debug.max_memory_per_job is None  # MaxMemPerNode=UNLIMITED


def test_partition_limits_per_node_scale_with_nodes() -> None:
    line = ("PartitionName=gpu Default=NO MaxNodes=4 MaxTime=UNLIMITED DefaultTime=NONE "
            "MaxCPUsPerNode=16 TotalCPUs=256 TotalNodes=8 MaxMemPerNode=64000 State=DOWN "
            "PriorityTier=5")
    [gpu] = parse_partitions(line)
    assert (gpu.max_time, gpu.default_time, gpu.up, gpu.priority_tier) == (None, None, False, 5)
    assert (gpu.max_cpus_per_job, gpu.max_memory_per_job) == (64, 256000)


def test_sinfo_nodes() -> None:
    [node] = parse_sinfo(fixture("sinfo-22.05.json"))
    assert node == {"name": "vm", "state": "allocated", "cpus": 2, "alloc_cpus": 2,
                    "memory": 22176, "alloc_memory": 512, "gpus": 0,
                    "partitions": ["debug", "long"]}


def test_sstat_usage() -> None:
    usage = parse_sstat("12.batch|00:01:02.500|10240K|2G|1\n")
    assert usage == {"step": "12.batch", "ave_cpu_seconds": 62.5, "max_rss_kib": 10240,
                     "max_vmsize_kib": 2 * 1024 * 1024, "ntasks": 1}
    assert parse_sstat("") == {}


def test_squeue_keeps_only_the_comments_asked_for() -> None:
    text = fixture("squeue-ended-22.05.json")
    mine = parse_squeue(text, "jobgate:fixture:")
    assert sorted(job.native_id for job in mine) == ["2", "3", "4", "5", "6", "7", "8"]
    assert parse_squeue(text, "jobgate:nobody:") == []


# -- squeue's text form (the poller's when it reads only its own jobs) ----------------

SEPARATOR = "~fixture1sep~"  # what squeue-text-22.05.txt was recorded with


def test_squeue_text_of_every_kind_of_job() -> None:
    jobs = {job.tag.job_id: job for job in parse_squeue_text(
        fixture("squeue-text-22.05.txt"), SEPARATOR, "jobgate:fixture:") if job.tag}
    failed = jobs[1]
    assert (failed.state, failed.reason, failed.exit_code, failed.exit_code_signal) == (
        JobState.FAILED, "NonZeroExitCode", 3, None)
    assert failed.native_id == "7064" and failed.tag == Tag("fixture", 1, 0)
    assert failed.start_time == datetime.fromtimestamp(1795464169, UTC) == failed.end_time
    completed = jobs[2]
    assert (completed.state, completed.exit_code, completed.reason) == (
        JobState.COMPLETED, 0, None)
    cancelled = jobs[3]
    assert (cancelled.state, cancelled.exit_code_signal) == (JobState.CANCELLED, 15)
    assert (jobs[7].state, jobs[7].reason, jobs[7].exit_code_signal) == (
        JobState.FAILED, "JobLaunchFailure", 9)
    assert (jobs[8].state, jobs[8].reason) == (JobState.TIMEOUT, "TimeLimit")
    # a comment holding the separator's neighbours and pipes is read whole
    assert (jobs[10].exit_code, jobs[10].tag) == (1, Tag("fixture", 10, 0))
    running = next(j for j in jobs.values() if j.tag == Tag("fixture", 4, 1))
    assert running.state is JobState.RUNNING and running.start_time is not None
    assert running.end_time is None and running.exit_code is None  # projected end dropped
    held = next(j for j in jobs.values() if j.tag == Tag("fixture", 5, 1))
    assert (held.state, held.reason, held.start_time, held.held) == (
        JobState.PENDING, "JobHeldUser", None, True)


def test_a_comment_cannot_pass_for_a_record() -> None:
    # Job 7069's comment holds a line shaped like a record of job 7065 (COMPLETED,
    # tag jobgate:fixture:9.0) with another separator: it stays that job's comment.
    jobs = parse_squeue_text(fixture("squeue-text-22.05.txt"), SEPARATOR)
    assert len(jobs) == 11 and len({job.native_id for job in jobs}) == 11
    forger = next(job for job in jobs if job.native_id == "7069")
    assert forger.tag is None and forger.state is JobState.CANCELLED
    assert Tag("fixture", 9, 0) not in {job.tag for job in jobs}


def test_squeue_text_agrees_with_its_json_on_the_fields_it_has() -> None:
    text = parse_squeue_text(fixture("squeue-text-22.05.txt"), SEPARATOR, "jobgate:fixture:")
    assert {job.restart_count for job in text} == {0}
    assert all(job.raw == {} and job.name == "" for job in text)


def test_squeue_text_that_is_not_squeues_is_refused() -> None:
    with pytest.raises(BackendError, match="unexpected"):
        parse_squeue_text("squeue: error: Invalid job format specification: exit_code\n",
                          SEPARATOR)
    with pytest.raises(BackendError, match="unexpected record"):
        parse_squeue_text(f"7064{SEPARATOR}FAILED{SEPARATOR}\n", SEPARATOR)
    assert parse_squeue_text("", SEPARATOR) == []


def test_squeue_text_reads_again_only_what_changed() -> None:
    text = fixture("squeue-text-22.05.txt")
    memo: dict[tuple[str, ...], SlurmJob] = {}
    first = parse_squeue_text(text, SEPARATOR, "jobgate:fixture:", memo)
    assert len(memo) == len(first) == 10  # ours only
    # the running job ended meanwhile; the rest is the same
    running = f"{SEPARATOR}RUNNING{SEPARATOR}None{SEPARATOR}0{SEPARATOR}"
    later = text.replace(running, f"{SEPARATOR}COMPLETED{SEPARATOR}None{SEPARATOR}0{SEPARATOR}")
    second = parse_squeue_text(later, SEPARATOR, "jobgate:fixture:", memo)
    assert second == parse_squeue_text(later, SEPARATOR, "jobgate:fixture:")
    unchanged = [a is b for a, b in zip(first, second, strict=True)]
    assert unchanged.count(False) == 1 and len(memo) == 10
    [ended] = [b for a, b in zip(first, second, strict=True) if a is not b]
    assert ended.state is JobState.COMPLETED and ended.tag == Tag("fixture", 4, 1)
