"""The backend contract with real processes, against every backend (`kind`): the
local cluster and a real Slurm, through its commands and through slurmrestd.
Outcomes, verbs, limits and survival."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from backend_harness import Harness

from jobgate.backends.base import Backend
from jobgate.backends.local.jobdir import JobDir, live_daemon
from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import (
    ConflictError,
    InvalidSpecError,
    UnsupportedError,
    VerbNotSupportedError,
)

local_only = pytest.mark.parametrize("kind", ["local"])
rest_only = pytest.mark.parametrize("kind", ["slurm-rest"])


def test_success(harness: Harness, kind: str) -> None:
    job = harness.run(script="#!/bin/bash\necho hi\necho oops >&2\n")
    end = harness.final(job)
    assert end.state is JobState.COMPLETED
    assert end.exit_code == 0 and end.exit_code_signal is None
    assert end.start_time is not None and end.end_time is not None
    assert Path(job.standard_output).read_text() == "hi\n"
    assert Path(job.standard_error).read_text() == "oops\n"
    assert {"cpu_user", "cpu_system"} <= set(end.data)
    if kind == "local":  # Slurm keeps memory use in its accounting (the stats verb)
        assert "max_rss_kib" in end.data


def test_a_script_runs_by_its_shebang_line(harness: Harness) -> None:
    script = "#!/usr/bin/env python3\nimport sys\nprint('python', sys.version_info[0])\n"
    end = harness.final(job := harness.run(script=script))
    assert end.state is JobState.COMPLETED, Path(job.standard_error).read_text()
    assert Path(job.standard_output).read_text() == "python 3\n"


def test_open_mode_append_keeps_what_the_output_file_held(harness: Harness) -> None:
    job = harness.record(command="echo new", open_mode="append")
    output = Path(job.standard_output)
    output.write_text("before\n")
    shutil.chown(output, harness.workdir.owner(), harness.workdir.group())  # slurmrestd's user
    harness.start(job)
    assert harness.final(job).state is JobState.COMPLETED
    assert Path(job.standard_output).read_text() == "before\nnew\n"


def test_non_zero_exit_is_failed_with_its_code(harness: Harness) -> None:
    end = harness.final(harness.run(command="exit 3"))
    assert (end.state, end.exit_code, end.exit_code_signal) == (JobState.FAILED, 3, None)


def test_exit_code_above_128_is_not_mistaken_for_a_signal(harness: Harness) -> None:
    end = harness.final(harness.run(command="exit 137"))
    assert (end.state, end.exit_code, end.exit_code_signal) == (JobState.FAILED, 137, None)


def test_killed_by_a_signal_records_the_signal(harness: Harness) -> None:
    end = harness.final(harness.run(command="kill -KILL $$"))
    assert end.state is JobState.FAILED
    assert (end.exit_code, end.exit_code_signal) == (None, 9)
    assert "SIGKILL" in (end.reason or "")


def test_environment(harness: Harness, workdir: Path) -> None:
    job = harness.run(
        name="envjob", cpus_per_task=2, environment={"MY_VAR": "x y"},
        command="echo $SLURM_JOB_ID $SLURM_JOB_NAME $SLURM_SUBMIT_DIR $SLURM_CPUS_PER_TASK "
                "$JOBGATE_JOB_ID \"$MY_VAR\" $(pwd)",
    )
    assert harness.final(job).state is JobState.COMPLETED
    # SLURM_JOB_ID is the cluster's id of the job: the gateway's own on the local cluster.
    native_id = harness.native_ids.get(job.id, str(job.id))
    assert Path(job.standard_output).read_text().split() == [
        native_id, "envjob", str(workdir), "2", str(job.id), "x", "y", str(workdir),
    ]


SLURMD_VARIABLES = ("SLURM_JOBID", "SLURM_NNODES", "SLURM_NODELIST", "SLURMD_NODENAME",
                    "SLURM_CPUS_ON_NODE", "SLURM_TASKS_PER_NODE", "SLURM_PROCID",
                    "SLURM_NODEID", "SLURM_LOCALID", "SLURM_JOB_USER", "SLURM_JOB_UID",
                    "SLURM_SUBMIT_HOST")


def test_the_variables_slurmd_gives_a_batch_script(harness: Harness) -> None:
    job = harness.run(command=f'for v in {" ".join(SLURMD_VARIABLES)}; do echo "$v=${{!v}}"; done')
    assert harness.final(job).state is JobState.COMPLETED
    values = dict(line.split("=", 1) for line in Path(job.standard_output).read_text().split())
    assert values["SLURM_JOBID"] == harness.native_ids.get(job.id, str(job.id))
    assert values["SLURM_NODELIST"] == values["SLURMD_NODENAME"] != ""
    assert [values[f"SLURM_{name}"] for name in (
        "NNODES", "CPUS_ON_NODE", "TASKS_PER_NODE", "PROCID", "NODEID", "LOCALID")] == [
        "1", "1", "1", "0", "0", "0"]
    assert values["SLURM_JOB_UID"].isdigit() and values["SLURM_JOB_USER"]
    assert values["SLURM_SUBMIT_HOST"]


def test_cancel_running_job(harness: Harness, workdir: Path) -> None:
    job = harness.run(command=f"echo started > {workdir}/flag; sleep 60")
    harness.wait_for_file(workdir / "flag")
    harness.backend.cancel(harness.as_in_ledger(job))
    end = harness.final(job)
    assert end.state is JobState.CANCELLED
    assert end.exit_code_signal == 15


def test_cancel_escalates_to_sigkill_after_the_grace(harness: Harness, workdir: Path) -> None:
    job = harness.run(command=f"trap '' TERM; echo started > {workdir}/flag; sleep 60 & wait")
    harness.wait_for_file(workdir / "flag")
    harness.backend.cancel(harness.as_in_ledger(job))
    end = harness.final(job)
    assert end.state is JobState.CANCELLED
    assert end.exit_code_signal == 9


def test_cancel_before_the_job_starts(harness: Harness) -> None:
    job = harness.record(command="echo should-not-run")
    harness.backend.cancel(job)
    harness.start(job)
    end = harness.final(job)
    assert end.state is JobState.CANCELLED
    assert end.start_time is None
    assert not Path(job.standard_output).exists()


def test_time_limit_ends_in_timeout(harness: Harness) -> None:
    # Slurm counts limits in whole minutes and checks them every ~30 s: the
    # harness's patience waits for it.
    end = harness.final(harness.run(command="sleep 300", time_limit=1))
    assert end.state is JobState.TIMEOUT


TRAP_USR1 = "trap 'echo got USR1; exit 0' USR1; sleep 300 & wait"


def test_signal_b_warns_the_script_before_its_time_limit(harness: Harness, kind: str) -> None:
    # sbatch --signal=B:USR1@58 with a minute's limit: USR1 about 2 s in (Slurm
    # checks limits every ~30 s and may send it up to a minute early).
    spec = JobSpec.parse({"command": TRAP_USR1, "time_limit": 60, "signal": "B:USR1@58"})
    if kind == "slurm-rest":  # slurmrestd 22.05 takes no B: at all: refused at submit
        with pytest.raises(UnsupportedError, match="B: or R:"):
            harness.backend.check(spec)
        return
    harness.backend.check(spec)
    job = harness.run(command=TRAP_USR1, time_limit=60, signal="B:USR1@58")
    end = harness.final(job)
    assert (end.state, end.exit_code) == (JobState.COMPLETED, 0), end
    assert Path(job.standard_output).read_text() == "got USR1\n"


@local_only
def test_signal_without_b_reaches_no_batch_script(harness: Harness, kind: str) -> None:
    # Slurm sends it to the job's steps alone; a job here has none.
    job = harness.run(command=TRAP_USR1, time_limit=2, signal="USR1@1")
    assert harness.final(job).state is JobState.TIMEOUT
    assert Path(job.standard_output).read_text() == ""


def test_starting_twice_runs_once(harness: Harness, workdir: Path) -> None:
    job = harness.record(command=f"echo run >> {workdir}/runs")
    harness.start(job)
    harness.start(job)
    assert harness.final(job).state is JobState.COMPLETED
    time.sleep(0.3)
    assert (workdir / "runs").read_text() == "run\n"


def test_jobs_outlive_the_gateway_and_are_adopted(
    harness: Harness, make_backend: Callable[[], Backend], workdir: Path
) -> None:
    running = harness.run(command=f"echo up > {workdir}/flag; sleep 1; echo done; exit 4")
    harness.wait_for_file(workdir / "flag")
    harness.backend.close()  # the gateway goes away; the jobs go on
    successor = make_backend()
    try:
        assert successor.adopt([harness.as_in_ledger(running)]) == []  # nothing to say yet
        after = Harness(successor, workdir, patience=harness.patience)
        end = after.final(running)
        assert (end.state, end.exit_code) == (JobState.FAILED, 4)
        assert Path(running.standard_output).read_text() == "done\n"
    finally:
        successor.close()


def test_adopt_reports_jobs_that_ended_while_nobody_watched(
    harness: Harness, make_backend: Callable[[], Backend], workdir: Path
) -> None:
    job = harness.run(command=f"touch {workdir}/ran")
    harness.wait_for_file(workdir / "ran", allow_empty=True)
    harness.backend.close()
    time.sleep(1.0 * harness.patience)  # it ends while no gateway runs
    successor = make_backend()
    try:
        after = Harness(successor, workdir, patience=harness.patience)
        for update in successor.adopt([harness.as_in_ledger(job)]):
            after.note(update)
        assert after.final(job).state is JobState.COMPLETED
    finally:
        successor.close()


def test_adopt_launches_a_claimed_job_that_never_started(harness: Harness) -> None:
    job = harness.record(command="echo late")
    assert harness.backend.adopt([job]) == []
    assert harness.final(job).state is JobState.COMPLETED
    assert Path(job.standard_output).read_text() == "late\n"


@local_only
def test_a_run_whose_daemon_vanished_is_unknown(
    harness: Harness, home: Path
) -> None:
    job = harness.record(command="true")
    (home / "runs").mkdir(parents=True, exist_ok=True)
    (home / "runs" / f"{job.id}.0").write_text(json.dumps({"daemon": "long-gone"}) + "\n")
    [end] = harness.backend.adopt([job])
    assert end.state is JobState.UNKNOWN


@local_only
def test_a_run_recorded_by_a_daemon_of_an_earlier_release_is_read(
    harness: Harness, home: Path
) -> None:
    """Such a daemon, still running after an upgrade, keeps a directory a run."""
    lost, ended = harness.record(command="true"), harness.record(command="true")
    for job in (lost, ended):
        (home / "runs" / f"{job.id}.0").mkdir(parents=True)
        (home / "runs" / f"{job.id}.0" / "started.json").write_text('{"daemon": "old"}')
    (home / "runs" / f"{ended.id}.0" / "exit.json").write_text(json.dumps(
        {"start_time": "2026-01-01T00:00:00+00:00", "end_time": "2026-01-01T00:00:01+00:00",
         "exit_code": 3, "signal": None}))
    ends = harness.backend.adopt([lost, ended])
    states = {end.job_id: (end.state, end.exit_code) for end in ends}
    assert states == {lost.id: (JobState.UNKNOWN, None), ended.id: (JobState.FAILED, 3)}


@local_only
def test_a_run_record_being_written_is_not_taken_for_lost(harness: Harness, home: Path) -> None:
    job = harness.record(command="echo up; sleep 30")
    harness.start(job)
    harness.wait_for_file(Path(job.standard_output))
    record = JobDir(home / "runs" / f"{job.id}.0")
    daemon = live_daemon(home / "runs")
    assert record.running(daemon)
    # As between the daemon's create and its first write:
    other = JobDir(home / "runs" / f"{harness.record(command='true').id}.0")
    other.path.touch()
    assert other.started_by() == "" and other.running(daemon)
    assert not other.ended_or_lost(daemon) and other.ended_or_lost(None)
    # One still empty long after was left by a daemon that stopped in between.
    os.utime(other.path, (time.time() - 60, time.time() - 60))
    assert not other.running(daemon) and other.ended_or_lost(daemon)
    harness.backend.cancel(job)
    assert harness.final(job).state is JobState.CANCELLED


def test_a_missing_working_directory_fails_the_launch(harness: Harness, workdir: Path) -> None:
    job = harness.record(command="true").model_copy(
        update={"working_directory": str(workdir / "gone")}
    )
    harness.start(job)
    end = harness.final(job)
    assert end.state is JobState.FAILED
    assert "launch failed" in (end.reason or "")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"gpus": 64}, InvalidSpecError),
        ({"cpus_per_task": 4096}, InvalidSpecError),
        ({"memory": "64T"}, InvalidSpecError),
        ({"nodes": 2}, InvalidSpecError),
        ({"working_directory": "/no/such/dir"}, InvalidSpecError),
    ],
)
def test_check_refuses_what_it_cannot_do(
    backend: Backend, fields: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        backend.check(JobSpec.parse({"command": "true", **fields}))


def test_check_accepts_what_it_can_do(backend: Backend, workdir: Path) -> None:
    backend.check(JobSpec.parse({
        "command": "true", "gpus": 0, "nodes": 1, "time_limit": 60, "memory": "1G",
        "working_directory": str(workdir), "tags": ["a"], "priority": 3,
    }))


def count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_until_still(path: Path, patience: float) -> int:
    """The line count of `path` once it has stopped growing for half a second
    (Slurm's cgroup freezer takes a moment to catch every process)."""
    deadline = time.monotonic() + 5 * patience
    count = count_lines(path)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = count_lines(path)
        if now == count:
            return count
        count = now
    raise AssertionError(f"{path} kept growing: the job was not suspended")


def refused_as_missing(harness: Harness, verb: str, job: JobRecord) -> bool:
    """Whether the backend lacks `verb` (slurmrestd 22.05 cannot suspend): then
    its capabilities say so and the verb is refused, never faked; the job is
    cancelled."""
    if verb in harness.backend.capabilities.verbs:
        return False
    with pytest.raises(VerbNotSupportedError):
        getattr(harness.backend, verb)(harness.as_in_ledger(job))
    harness.backend.cancel(harness.as_in_ledger(job))
    assert harness.final(job).state is JobState.CANCELLED
    return True


def test_suspend_stops_the_job_and_its_clock(harness: Harness, workdir: Path, kind: str) -> None:
    ticks = workdir / "ticks"
    # About 4 s of work; a 6 s limit (Slurm: its smallest, a minute); suspended
    # for 3 s in the middle, so the job would time out if suspended time counted.
    job = harness.run(command=f"for i in $(seq 40); do echo $i >> {ticks}; sleep 0.1; done",
                      time_limit=6)
    harness.wait_for_file(ticks)
    if refused_as_missing(harness, "suspend", job):
        return
    harness.backend.suspend(harness.as_in_ledger(job))
    frozen = wait_until_still(ticks, harness.patience)
    time.sleep(2.5)
    assert count_lines(ticks) == frozen < 40
    harness.backend.resume(harness.as_in_ledger(job))
    end = harness.final(job)
    assert end.state is JobState.COMPLETED  # suspended time did not count
    assert count_lines(ticks) == 40
    if kind == "local":
        assert end.data["suspended_seconds"] >= 2.5
    else:
        assert JobState.SUSPENDED in harness.states(job)


def test_cancel_a_suspended_job(harness: Harness, workdir: Path) -> None:
    job = harness.run(command=f"touch {workdir}/flag; sleep 60")
    harness.wait_for_file(workdir / "flag", allow_empty=True)
    if refused_as_missing(harness, "suspend", job):
        return
    harness.backend.suspend(harness.as_in_ledger(job))
    harness.backend.cancel(harness.as_in_ledger(job))
    assert harness.final(job).state is JobState.CANCELLED


def test_send_signal_reaches_the_job(harness: Harness, workdir: Path) -> None:
    job = harness.run(
        command=f"trap 'echo got USR1; exit 0' USR1; touch {workdir}/flag; "
                "while true; do sleep 0.05; done"
    )
    harness.wait_for_file(workdir / "flag", allow_empty=True)
    harness.backend.send_signal(harness.as_in_ledger(job), signal.SIGUSR1)
    assert harness.final(job).state is JobState.COMPLETED
    assert Path(job.standard_output).read_text() == "got USR1\n"


def test_notify_appends_to_stdout(harness: Harness, workdir: Path) -> None:
    job = harness.run(command=f"echo first; touch {workdir}/flag; sleep 0.5")
    harness.wait_for_file(workdir / "flag", allow_empty=True)
    harness.backend.notify(harness.as_in_ledger(job), "hello from the operator")
    harness.final(job)
    assert Path(job.standard_output).read_text() == "first\nhello from the operator\n"


def test_a_new_time_limit_applies_to_a_running_job(harness: Harness, workdir: Path) -> None:
    job = harness.run(command=f"touch {workdir}/flag; sleep 300")
    harness.wait_for_file(workdir / "flag", allow_empty=True)
    harness.backend.set_time_limit(harness.as_in_ledger(job), 1)
    assert harness.final(job).state is JobState.TIMEOUT


def test_memory_beyond_the_limit_is_out_of_memory(harness: Harness, kind: str) -> None:
    # A job through slurmrestd runs as its user, who cannot read root's home
    # (where this interpreter may live): the system's python then.
    python = "/usr/bin/python3" if kind == "slurm-rest" else sys.executable
    grab = f"{python} -c 'import time; x = bytearray(300 << 20); time.sleep(30)'"
    end = harness.final(harness.run(command=grab, memory=64))
    assert end.state is JobState.OUT_OF_MEMORY
    if kind == "local":  # Slurm's cgroup says so itself; its usage is in its accounting
        # Up to its limit (a cgroup), or past it (sampled): tests/contract/test_local_memory.py
        assert end.data["max_rss_kib"] > 32 * 1024


def test_verbs_on_a_job_that_is_gone_conflict(harness: Harness) -> None:
    job = harness.run(command="true")
    harness.final(job)
    gone = harness.as_in_ledger(job)
    for verb in ("suspend", "resume"):
        with pytest.raises(ConflictError if verb in harness.backend.capabilities.verbs
                           else VerbNotSupportedError):
            getattr(harness.backend, verb)(gone)
    with pytest.raises(ConflictError):
        harness.backend.send_signal(gone, signal.SIGUSR1)


@local_only
def test_a_garbled_order_does_not_stop_the_daemon(harness: Harness, home: Path) -> None:
    import socket

    harness.final(harness.run(command="true"))
    daemon = json.loads((home / "runs" / "daemon.json").read_text())["id"]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(home / "runs" / "daemon.sock"))
        sock.sendall(b"{not json\n" + b'{"op": "launch", "dir": 5}\n')
    assert harness.final(harness.run(command="true")).state is JobState.COMPLETED
    # The same daemon ran the second job: the garbage did not bring it down.
    assert json.loads((home / "runs" / "daemon.json").read_text())["id"] == daemon


@rest_only
def test_the_rest_transport_offers_what_slurmrestd_can_do(harness: Harness,
                                                          workdir: Path) -> None:
    # slurmrestd 22.05 (openapi v0.0.38) has no suspend/resume: the backend does
    # not offer them. Nor has it Slurm's requeue, its copy of the batch script or
    # sstat, which the backend refuses (jobgate requeues by a new run, and serves
    # a job's script and stats from its own records).
    assert harness.backend.capabilities.verbs == {
        "cancel", "signal", "notify", "modify", "hold", "release", "requeue", "script",
        "stats"}
    job = harness.run(command=f"touch {workdir}/flag; sleep 60")
    harness.wait_for_file(workdir / "flag", allow_empty=True)
    for verb in ("requeue", "batch_script"):
        with pytest.raises(VerbNotSupportedError):
            getattr(harness.backend, verb)(harness.as_in_ledger(job))
    with pytest.raises(VerbNotSupportedError):  # sstat: not while it runs
        harness.backend.usage(harness.as_in_ledger(job))
    harness.backend.cancel(harness.as_in_ledger(job))
    end = harness.final(job)
    assert end.state is JobState.CANCELLED
    # Once ended, its usage comes from slurmdbd (the steps report theirs at their end).
    ended = harness.as_in_ledger(job).model_copy(update={"state": JobState.CANCELLED})
    deadline = time.monotonic() + 15 * harness.patience
    while not (steps := harness.backend.usage(ended)["steps"]):  # slurmdbd lags a little
        assert time.monotonic() < deadline, "slurmdbd never recorded the job"
        time.sleep(0.5)
    assert steps[0]["step"] == harness.native_ids[job.id]
    assert {"elapsed", "total_cpu", "user_cpu", "system_cpu", "max_rss"} <= set(steps[0])
    # What the poller asks slurmdbd of jobs that left slurmctld's memory.
    backend: Any = harness.backend
    [record] = backend.transport.ended_since(120, [harness.native_ids[job.id]])
    assert (record.state, record.tag) == (JobState.CANCELLED, backend.tag(job))
