"""`jobgate ls` as squeue: -A, --me against all one may see, and --format."""

from __future__ import annotations

import json
import uuid
from typing import Any

from jobgate import Client
from jobgate.client.admin import Admin
from server_process import Run


def _submit(run: Run, *args: str, **env: str) -> int:
    result = run("submit", "--wrap", "true", *args, **env)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def _ids(run: Run, *args: str, **env: str) -> list[int]:
    result = run("ls", "--json", *args, **env)
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return [job["id"] for job in listed]


def test_account_me_and_all(jobgate_cli: Run, client: Client) -> None:
    tag = f"ls-{uuid.uuid4().hex[:8]}"
    name = f"u{uuid.uuid4().hex[:8]}"
    admin = Admin(client)
    admin.add_user(name)
    token = admin.create_token(name)["token"]
    mine_a = _submit(jobgate_cli, "--tag", tag, "-A", "acct-a")
    mine_b = _submit(jobgate_cli, "--tag", tag, "-A", "acct-b")
    theirs = _submit(jobgate_cli, "--tag", tag, JOBGATE_TOKEN=token)

    assert _ids(jobgate_cli, "--tag", tag, "-A", "acct-a") == [mine_a]
    assert _ids(jobgate_cli, "--tag", tag, "--account", "acct-b") == [mine_b]
    # As squeue: every job the caller may see; --me narrows to one's own.
    assert _ids(jobgate_cli, "--tag", tag) == [theirs, mine_b, mine_a]
    assert _ids(jobgate_cli, "--tag", tag, "--me") == [mine_b, mine_a]
    assert _ids(jobgate_cli, "--tag", tag, "-u", name) == [theirs]
    # A non-admin sees only their own jobs, with or without --me.
    assert _ids(jobgate_cli, "--tag", tag, JOBGATE_TOKEN=token) == [theirs]
    assert _ids(jobgate_cli, "--tag", tag, "--me", JOBGATE_TOKEN=token) == [theirs]
    assert _ids(jobgate_cli, "--tag", tag, "-A", "acct-a", JOBGATE_TOKEN=token) == []
    both = jobgate_cli("ls", "--me", "-u", name)
    assert both.returncode == 2 and "--me or --user" in both.stderr
    assert [job.id for job in client.list(tag=tag, account="acct-b")] == [mine_b]


def test_format_string_and_columns(jobgate_cli: Run, client: Client) -> None:
    tag = f"ls-{uuid.uuid4().hex[:8]}"
    job_id = _submit(jobgate_cli, "--tag", tag, "-A", "physics", "-J", "a-rather-long-name",
                     "-t", "2:00")
    client.get(job_id).wait(timeout=60)

    squeue = jobgate_cli("ls", "--tag", tag, "--format", "%.7i|%.5j|%a|%t|%T|%l|%%")
    assert squeue.returncode == 0, squeue.stderr
    assert squeue.stdout.splitlines() == [
        "  JOBID| NAME|ACCOUNT|ST|STATE|TIME_LIMIT|%",
        f"{job_id:>7}|a-rat|physics|CD|COMPLETED|0:02:00|%",
    ]
    padded = jobgate_cli("ls", "--tag", tag, "-o", "%10u:%i")
    assert padded.stdout.splitlines()[0] == "USER      :JOBID"

    columns = jobgate_cli("ls", "--tag", tag, "--format", "JobID,account,State,time_limit")
    assert columns.returncode == 0, columns.stderr
    header, row = columns.stdout.splitlines()
    assert header.split() == ["JOBID", "ACCOUNT", "STATE", "TIME_LIMIT"]
    assert row.split() == [str(job_id), "physics", "COMPLETED", "0:02:00"]

    for bad, says in (("%Y", "unknown field %Y"), ("id,colour", "unknown column 'colour'"),
                      (",", "names no column")):
        result = jobgate_cli("ls", "--format", bad)
        assert result.returncode == 2, result.stderr
        assert says in result.stderr and "Traceback" not in result.stderr
