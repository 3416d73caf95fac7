"""Slurm command lines and the batch script, built without Slurm; the wrapper run
by bash here, as slurmd would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobgate.backends.scripts import script_argv
from jobgate.backends.slurm import commands
from jobgate.backends.slurm.parsing import Tag
from jobgate.backends.slurm.transport import CliTransport, Completed, sbatch_environment
from jobgate.backends.slurm.wrapper import RunDir, batch_script, job_environment
from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import BackendError, ConflictError

TAG = Tag("gw1", 7, 0)


def record(**fields: object) -> JobRecord:
    spec = JobSpec.parse({"command": "true", **{k: v for k, v in fields.items()
                                                if k in JobSpec.model_fields}})
    values: dict[str, object] = dict(
        id=7, name="job", state=JobState.PENDING, state_reason=None, held=False,
        user_name="ann", cluster="hpc", partition="debug", account=None, num_nodes=1,
        ntasks=1, cpus_per_task=1, memory=None, memory_per_cpu=None, gpus=0,
        time_limit=None, priority=0, tags=[], comment=None, working_directory="/w",
        standard_output="/w/out-7", standard_error="/w/err-7", submit_time=datetime.now(UTC),
        start_time=None, end_time=None, exit_code=None, exit_code_signal=None,
        requeue_count=0, native_id=None, spec=spec,
    )
    values.update({k: v for k, v in fields.items() if k in JobRecord.model_fields})
    return JobRecord.model_validate(values)


@pytest.mark.parametrize(("seconds", "text"), [
    (1, "00:01:00"), (60, "00:01:00"), (61, "00:02:00"), (3600, "01:00:00"),
    (86400 + 90, "1-00:02:00"),
])
def test_time_limits_round_up_to_minutes(seconds: int, text: str) -> None:
    assert commands.format_time_limit(seconds) == text


def test_sbatch_options_carry_the_request() -> None:
    job = record(name="sim", account="proj", ntasks=4, cpus_per_task=2, memory=2048,
                 time_limit=90, requeue_count=1, num_nodes=2, gpus=1,
                 standard_output="/w/100%/out")
    options = commands.sbatch_options(job, TAG)
    assert options[:5] == ["--job-name=sim", "--comment=jobgate:gw1:7.0", "--chdir=/w",
                           "--output=/w/100%%/out", "--error=/w/err-7"]
    for wanted in ("--open-mode=append", "--partition=debug", "--nodes=2", "--ntasks=4",
                   "--cpus-per-task=2", "--account=proj", "--mem=2048M", "--gpus=1",
                   "--time=00:02:00", "--export=ALL"):
        assert wanted in options
    per_cpu = commands.sbatch_options(record(memory_per_cpu=512), TAG)
    assert "--mem-per-cpu=512M" in per_cpu and not any(o.startswith("--time") for o in per_cpu)


def test_sbatch_options_carry_mail_qos_requeue_signal_and_open_mode() -> None:
    options = commands.sbatch_options(record(
        mail_type="end,fail", mail_user="ann@example.org", qos="long", requeue=False,
        open_mode="append", signal="B:USR1@90", exclusive=True, constraint="gpu&ib",
        reservation="maint"), TAG)
    for wanted in ("--mail-type=END,FAIL", "--mail-user=ann@example.org", "--qos=long",
                   "--no-requeue", "--open-mode=append", "--signal=B:USR1@90", "--exclusive",
                   "--constraint=gpu&ib", "--reservation=maint"):
        assert wanted in options
    plain = commands.sbatch_options(record(), TAG)
    assert "--open-mode=truncate" in plain
    assert not any(o.startswith(("--mail", "--qos", "--requeue", "--no-requeue", "--signal",
                                 "--exclusive", "--constraint", "--reservation"))
                   for o in plain)
    assert "--requeue" in commands.sbatch_options(record(requeue=True), TAG)


def test_a_line_break_cannot_smuggle_a_directive() -> None:
    with pytest.raises(ValueError, match="line break"):
        commands.sbatch_options(record(name="x\n#SBATCH --uid=0"), TAG)


def test_argv_of_the_verbs() -> None:
    assert commands.sbatch() == ["sbatch", "--parsable"]
    assert commands.squeue() == ["squeue", "--json"]
    text = commands.squeue_text("~ab12~")
    assert text[:5] == ["squeue", "-h", "-t", "all", "-O"]
    assert text[5].startswith("JobID:~ab12~,State:~ab12~,") and text[5].endswith("Comment:~ab12~")
    # One user: slurmctld sends that user's jobs alone.
    assert commands.squeue_text("~ab12~", "alice")[4:7] == ["-u", "alice", "-O"]
    for bad in ("~a,b~", "ab"):
        with pytest.raises(ValueError):
            commands.squeue_text(bad)
    assert commands.scancel("12") == ["scancel", "12"]
    assert commands.send_signal("12", "USR1") == ["scancel", "--batch", "--signal=USR1", "12"]
    assert commands.scontrol("requeuehold", "12") == ["scontrol", "requeuehold", "12"]
    with pytest.raises(ValueError):
        commands.scontrol("delete", "12")
    assert commands.update_time_limit("12", 61) == [
        "scontrol", "update", "JobId=12", "TimeLimit=00:02:00"]
    assert commands.update_time_limit("12", None)[-1] == "TimeLimit=UNLIMITED"
    assert commands.batch_script("12") == ["scontrol", "write", "batch_script", "12", "-"]
    assert commands.sstat("12")[-1] == "12.batch"
    sacct = commands.sacct_since(300, ["12", "13"])
    assert sacct[sacct.index("-S") + 1] == "now-300"
    assert sacct[sacct.index("-j") + 1] == "12,13"
    assert "-X" in sacct and "-P" in sacct


def test_sbatch_runs_in_a_curated_environment() -> None:
    env = sbatch_environment({"PATH": "/bin", "JOBGATE_DATABASE_URL": "secret",
                              "SBATCH_PARTITION": "x", "SLURM_JOB_ID": "3",
                              "SLURM_CONF": "/etc/slurm/other.conf"})
    assert env == {"PATH": "/bin", "SLURM_CONF": "/etc/slurm/other.conf"}


class FakeRunner:
    """Answers like Slurm's commands would, and remembers what was asked."""

    def __init__(self, *answers: Completed) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []
        self.inputs: list[str | None] = []

    def __call__(self, argv: object, *, timeout: float, env: object = None,
                 input: str | None = None) -> Completed:
        self.calls.append(list(argv))  # type: ignore[call-overload]
        self.inputs.append(input)
        return self.answers.pop(0)


def test_the_cli_transport_classifies_errors() -> None:
    runner = FakeRunner(
        Completed(0, "42;test\n", ""),
        Completed(1, "", "sbatch: error: Batch job submission failed: Invalid partition"),
        Completed(1, "", "sbatch: error: Batch job submission failed: Unable to contact "
                         "slurm controller (connect failure)"),
        Completed(1, "", "scancel: error: Kill job error on job id 5: Job/step already "
                         "completing or completed"),
        Completed(1, "", "sacct: error: Slurm accounting storage is disabled"),
    )
    cli = CliTransport(runner, env={})
    assert cli.submit("#!/bin/bash\ntrue\n") == "42"
    # The script goes on sbatch's standard input: no file is written for it.
    assert runner.calls[0] == ["sbatch", "--parsable"]
    assert runner.inputs[0] == "#!/bin/bash\ntrue\n"
    with pytest.raises(BackendError) as refused:
        cli.submit("")
    assert not refused.value.transient and "Invalid partition" in refused.value.message
    with pytest.raises(BackendError) as unreachable:
        cli.submit("")
    assert unreachable.value.transient
    with pytest.raises(ConflictError):
        cli.cancel("5")
    with pytest.raises(BackendError) as no_accounting:
        cli.ended_since(60)
    assert no_accounting.value.code == "no_accounting"


def test_job_environment_carries_the_gateway_array() -> None:
    job = record(array="0-8:2", array_job_id=5, array_task_id=4,
                 environment={"A": "1", "weird name": "x=y"})
    env = job_environment(job)
    assert env["A"] == "1" and env["weird name"] == "x=y"
    assert env["JOBGATE_JOB_ID"] == "7" and env["SLURM_SUBMIT_DIR"] == "/w"
    assert (env["SLURM_ARRAY_JOB_ID"], env["SLURM_ARRAY_TASK_ID"]) == ("5", "4")
    assert (env["SLURM_ARRAY_TASK_COUNT"], env["SLURM_ARRAY_TASK_STEP"]) == ("5", "2")
    assert "SLURM_JOB_ID" not in env  # Slurm's own


@pytest.mark.parametrize(("script", "argv"), [
    ("#!/bin/bash\necho", ["/bin/bash", "/r/script"]),
    ("#!/usr/bin/env python3\nprint()", ["/usr/bin/env", "python3", "/r/script"]),
    ("#!/bin/sh -e\ntrue", ["/bin/sh", "-e", "/r/script"]),
    ("echo no shebang", ["/bin/bash", "/r/script"]),
])
def test_scripts_run_by_their_shebang(script: str, argv: list[str]) -> None:
    assert script_argv(script, Path("/r/script")) == argv


# -- the wrapper, run by bash as slurmd runs a batch script ----------------------------


def wrapped(tmp_path: Path, script: str, env: dict[str, str] | None = None
            ) -> tuple[Path, RunDir]:
    """The batch script as slurmd would be given it (in a file of its own)."""
    run_dir = RunDir(tmp_path / "run")
    run_dir.make()
    batch = tmp_path / "slurm_script"
    batch.write_text(batch_script(["--job-name=t"], run_dir, script_argv(script, run_dir.script),
                                  script=script, env=env or {}))
    return batch, run_dir


def run_wrapped(tmp_path: Path, script: str, *, env: dict[str, str] | None = None,
                path: str | None = None) -> tuple[subprocess.CompletedProcess[str], RunDir]:
    batch, run_dir = wrapped(tmp_path, script, env)
    environ = {"PATH": path or os.environ["PATH"]}
    done = subprocess.run(["bash", str(batch)], capture_output=True, text=True,
                          env=environ, timeout=30, check=False)
    return done, run_dir


def test_the_wrapper_records_exit_codes_and_signals_apart(tmp_path: Path) -> None:
    done, run_dir = run_wrapped(tmp_path, "exit 137")
    ended = run_dir.outcome()
    assert done.returncode == 137 and ended is not None
    assert (ended.status.exit_code, ended.status.signal) == (137, None)
    assert set(ended.usage) == {"cpu_user", "cpu_system"}
    assert run_dir.started_at() is not None

    done, run_dir = run_wrapped(tmp_path / "k", "kill -KILL $$")
    ended = run_dir.outcome()
    # The wrapper dies of the same signal: Slurm sees what it would without it.
    assert done.returncode == -signal.SIGKILL and ended is not None
    assert (ended.status.exit_code, ended.status.signal) == (None, 9)


def test_the_wrapper_passes_the_environment_and_runs_by_shebang(tmp_path: Path) -> None:
    script = f"#!{sys.executable}\nimport os; print(os.environ['A'], os.environ['B'])\n"
    done, run_dir = run_wrapped(tmp_path, script, env={"A": "x y", "B": "line\nbreak"})
    assert done.stdout == "x y line\nbreak\n"
    ended = run_dir.outcome()
    assert ended is not None and ended.status.exit_code == 0


def test_the_wrapper_passes_signals_on_to_the_job(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    script = f"trap 'echo got USR1; exit 5' USR1; touch {flag}; while true; do sleep 0.05; done"
    batch, run_dir = wrapped(tmp_path, script)
    with subprocess.Popen(["bash", str(batch)], stdout=subprocess.PIPE, text=True,
                          env={"PATH": os.environ["PATH"]}) as process:
        deadline = time.monotonic() + 10
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGUSR1)  # as scancel --batch does: the wrapper only
        out, _ = process.communicate(timeout=10)
    assert out == "got USR1\n" and process.returncode == 5
    ended = run_dir.outcome()
    assert ended is not None and ended.status.exit_code == 5


def test_a_script_that_cannot_be_run_is_exit_127_recorded_once(tmp_path: Path) -> None:
    done, run_dir = run_wrapped(tmp_path, "#!/no/such/interpreter\ntrue\n")
    ended = run_dir.outcome()
    assert done.returncode == 127 and ended is not None
    assert (ended.status.exit_code, ended.status.signal) == (127, None)
    assert done.stderr.count("jobgate: cannot run /no/such/interpreter") == 1


def test_without_perl_the_shell_fallback_records_the_exit_code(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "date", "mv", "rm"):
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True,
                               text=True, check=True).stdout.strip()
        (bare / tool).symlink_to(found)
    done, run_dir = run_wrapped(tmp_path, "exit 3", path=str(bare))
    ended = run_dir.outcome()
    assert done.returncode == 3 and ended is not None
    assert ended.status.exit_code == 3


@pytest.mark.parametrize("path", [None, "bare"], ids=["perl", "shell fallback"])
def test_the_batch_script_carries_the_script_and_variables_whole(tmp_path: Path,
                                                                  path: str | None) -> None:
    if path == "bare":  # no perl on the PATH: the shell fallback does the same
        bare = tmp_path / "bin"
        bare.mkdir()
        for tool in ("bash", "date", "mv", "rm", "cat"):
            found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True,
                                   text=True, check=True).stdout.strip()
            (bare / tool).symlink_to(found)
        path = str(bare)
    # The here-document's end marker as a line of the script, no newline at its
    # end, and the job's standard input: each must reach the job as it was.
    script = ("#!/bin/bash\nprintf '%s|' \"$A\" \"$B\"\ncat\n"
              "[ -e /dev/fd/3 ] && echo 'fd 3 leaked'\n: <<'JOBGATE_DATA'\nJOBGATE_DATA\nexit 4")
    batch, run_dir = wrapped(tmp_path, script, {"A": "x y", "B": "line\nbreak $HOME ' \\"})
    stdin = tmp_path / "stdin"
    stdin.write_text("from stdin\n")
    with stdin.open() as given:
        done = subprocess.run(["bash", str(batch)], stdin=given, capture_output=True,
                              text=True, env={"PATH": path or os.environ["PATH"]},
                              timeout=30, check=False)
    assert done.stdout == "x y|line\nbreak $HOME ' \\|from stdin\n", done.stderr
    assert done.returncode == 4
    assert run_dir.script.read_text() == script
    ended = run_dir.outcome()
    assert ended is not None and ended.status.exit_code == 4


def test_a_command_runs_with_bash_c_as_on_the_local_cluster(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "run")
    run_dir.make()
    command = "echo \"$0 $A\"; exit 3"
    batch = tmp_path / "slurm_script"
    batch.write_text(batch_script([], run_dir, ["/bin/bash", "-c", command], script=None,
                                  env={"A": "a"}))
    done = subprocess.run(["bash", str(batch)], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"]}, timeout=30, check=False)
    assert (done.stdout, done.returncode) == ("/bin/bash a\n", 3)
    assert not run_dir.script.exists()  # nothing to write for a command
    # The command is in the batch script once.
    assert batch.read_text().count("exit 3") == 1
