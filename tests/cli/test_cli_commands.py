"""The `jobgate` command as a user runs it, against a real gateway."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from jobgate import Client, JobState
from server_process import LiveServer, Run

WAIT = 60


def submitted_id(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"Submitted batch job (\d+)\n", result.stdout)
    assert match, result.stdout
    return int(match.group(1))


def write_script(path: Path, *lines: str) -> Path:
    path.write_text("#!/bin/bash\n" + "\n".join(lines) + "\n")
    return path


def assert_one_error_line(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert text in result.stderr
    assert "Traceback" not in result.stderr


def test_submit_runs_in_the_current_directory(
    jobgate_cli: Run, client: Client, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "job.sh", "echo hello from $(pwd)")

    job_id = submitted_id(jobgate_cli("submit", str(script)))

    job = client.get(job_id)
    assert job.name == "job.sh"  # as sbatch names a job: after its script
    assert job.wait(timeout=WAIT) is JobState.COMPLETED
    assert (tmp_path / f"jobgate-{job_id}.out").read_text() == f"hello from {tmp_path}\n"
    logs = jobgate_cli("logs", str(job_id))
    assert (logs.returncode, logs.stdout) == (0, f"hello from {tmp_path}\n")


def test_options_win_over_sbatch_lines_and_unset_ones_are_not_sent(
    jobgate_cli: Run, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "named.sh", "#SBATCH -J from-script",
                          "#SBATCH --time=5:00", "true")

    shown = json.loads(jobgate_cli("submit", "--json", "-J", "from-cli", str(script)).stdout)
    assert (shown["name"], shown["time_limit"]) == ("from-cli", 300)

    job_id = submitted_id(jobgate_cli("submit", str(script), "-t", "1:00:00", "--mem", "1G"))
    shown = json.loads(jobgate_cli("show", "--json", str(job_id)).stdout)
    assert (shown["name"], shown["time_limit"], shown["memory"]) == ("from-script", 3600, 1024)


def test_submit_from_stdin_with_a_relative_chdir(jobgate_cli: Run, client: Client,
                                                tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()

    job_id = submitted_id(jobgate_cli("submit", "-D", "sub", "-", stdin="pwd\n"))

    job = client.get(job_id)
    assert job.working_directory == str(tmp_path / "sub")
    assert job.wait(timeout=WAIT) is JobState.COMPLETED
    assert job.read_stdout() == f"{tmp_path / 'sub'}\n"


def test_ls_json_and_table_filter_by_tag(jobgate_cli: Run, client: Client,
                                         tmp_path: Path) -> None:
    script = write_script(tmp_path / "t.sh", "true")
    tag = f"cli-{tmp_path.name}"
    ids = [submitted_id(jobgate_cli("submit", "--tag", tag, "--tag", "x", str(script)))
           for _ in range(2)]
    for job_id in ids:
        client.get(job_id).wait(timeout=WAIT)

    listed: list[dict[str, Any]] = json.loads(jobgate_cli("ls", "--json", "--tag", tag).stdout)
    assert [job["id"] for job in listed] == sorted(ids, reverse=True)
    assert all(job["state"] == "COMPLETED" and tag in job["tags"] for job in listed)
    assert json.loads(jobgate_cli("ls", "--json", "--tag", tag, "--limit", "1").stdout)[0][
        "id"] == max(ids)
    assert json.loads(jobgate_cli("ls", "--json", "--tag", tag, "--state", "running").stdout) \
        == []

    table = jobgate_cli("ls", "--tag", tag)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "USER", "STATE", "PARTITION", "TIME", "EXIT",
                              "SUBMITTED", "NODELIST(REASON)"]
    assert [int(row.split()[0]) for row in rows] == sorted(ids, reverse=True)
    assert all("COMPLETED" in row and "0:00:0" in row for row in rows)
    node = client.get(ids[0]).allocation["node"]
    assert all(row.split()[-1] == node for row in rows)  # where each ran


def test_ls_says_why_a_pending_job_waits(jobgate_cli: Run, tmp_path: Path) -> None:
    tag = f"why-{tmp_path.name}"
    job_id = submitted_id(jobgate_cli("submit", "--hold", "--tag", tag, "--wrap", "true"))
    (row,) = jobgate_cli("ls", "--tag", tag).stdout.splitlines()[1:]
    assert row.split()[0] == str(job_id) and row.split()[-1] == "(JobHeldUser)"
    assert jobgate_cli("cancel", str(job_id)).returncode == 0


def test_show_lists_every_field(jobgate_cli: Run, client: Client, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.sh", "exit 4")
    job_id = submitted_id(jobgate_cli("submit", "-J", "shown", str(script)))
    client.get(job_id).wait(timeout=WAIT)

    result = jobgate_cli("show", str(job_id))

    assert result.returncode == 0, result.stderr
    fields = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert fields["id"].strip() == str(job_id)
    assert fields["name"].strip() == "shown"
    assert fields["state"].strip() == "FAILED"
    assert fields["exit_code"].strip() == "4"
    assert "working_directory" in fields and "submit_time" in fields
    allocation = client.get(job_id).allocation
    assert fields["allocation"].strip() == (
        f"node {allocation['node']}, cpus {allocation['cpus'][0]}, memory -, gpus -")


def test_logs_stderr_and_follow(jobgate_cli: Run, client: Client, tmp_path: Path) -> None:
    script = write_script(tmp_path / "slow.sh", "echo oops >&2",
                          "for i in 1 2 3; do echo line $i; sleep 0.3; done")
    job_id = submitted_id(jobgate_cli("submit", str(script)))

    followed = jobgate_cli("logs", "--follow", str(job_id))

    assert (followed.returncode, followed.stdout) == (0, "line 1\nline 2\nline 3\n")
    assert client.get(job_id).done
    assert jobgate_cli("logs", "--stderr", str(job_id)).stdout == "oops\n"


def test_cancel_a_sleeping_job(jobgate_cli: Run, client: Client, tmp_path: Path) -> None:
    job_id = submitted_id(jobgate_cli("submit", "-", stdin="sleep 60\n"))

    result = jobgate_cli("cancel", str(job_id))

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"Cancel(led|ling) job {job_id}( \(\w+\))?\n", result.stdout)
    assert client.get(job_id).wait(timeout=WAIT) is JobState.CANCELLED
    assert_one_error_line(jobgate_cli("cancel", str(job_id)), "already ended")


def test_errors_are_one_line_and_exit_1(jobgate_cli: Run, tmp_path: Path) -> None:
    script = write_script(tmp_path / "e.sh", "true")

    assert_one_error_line(jobgate_cli("ls", JOBGATE_TOKEN="wrong"), "error: invalid token")
    assert_one_error_line(jobgate_cli("--token", "wrong", "show", "1"), "invalid token")
    assert_one_error_line(jobgate_cli("show", "987654"), "error: no job 987654")
    assert_one_error_line(jobgate_cli("logs", "987654"), "no job 987654")
    assert_one_error_line(jobgate_cli("submit", "-t", "soon", str(script)),
                          "error: time_limit: not a time")
    assert_one_error_line(jobgate_cli("submit", str(tmp_path / "missing.sh")),
                          "cannot read script")
    unreachable = "http://127.0.0.1:9"
    assert_one_error_line(jobgate_cli("--url", unreachable, "ls"),
                          f"cannot reach jobgate at {unreachable}")


def test_no_token_anywhere_says_where_it_looked(server: LiveServer, tmp_path: Path) -> None:
    env = {k: v for k, v in server.env().items() if k != "JOBGATE_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "jobgate", "ls"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert_one_error_line(result, f"no {tmp_path / 'var' / 'admin.token'}")


def test_serve_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "jobgate.toml").write_text('[clusters.local]\nmemory = "lots"\n')
    result = subprocess.run(
        [sys.executable, "-m", "jobgate", "serve", "--home", str(tmp_path), "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert_one_error_line(result, "error: invalid settings: memory: not a size")
