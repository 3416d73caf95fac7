"""Every steering and looking command of the CLI, against a real gateway."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from jobgate import Client, JobState
from server_process import Run

WAIT = 60


def _submit(run: Run, *args: str, **env: str) -> int:
    result = run("submit", *args, **env)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def test_submit_wait_exits_with_the_jobs_exit_code(jobgate_cli: Run) -> None:
    failed = jobgate_cli("submit", "--wait", "--wrap", "exit 7")
    assert failed.returncode == 7, failed.stderr
    ok = jobgate_cli("submit", "--wait", "--json", "--wrap", "echo hi", "-J", "w")
    assert ok.returncode == 0 and json.loads(ok.stdout)["state"] == "COMPLETED"
    assert jobgate_cli("submit").returncode == 2


def test_submit_parsable_prints_the_id_alone(jobgate_cli: Run, client: Client) -> None:
    # As `jobid=$(sbatch --parsable job.sh)` in a pipeline.
    plain = jobgate_cli("submit", "--parsable", "--hold", "--wrap", "true")
    assert plain.returncode == 0 and client.get(int(plain.stdout)).held
    on_cluster = jobgate_cli("submit", "--parsable", "-M", "local", "--hold", "--wrap", "true")
    job_id, cluster = on_cluster.stdout.strip().split(";")
    assert (client.get(int(job_id)).cluster, cluster) == ("local", "local")
    waited = jobgate_cli("submit", "--parsable", "--wait", "--wrap", "exit 3")
    assert waited.returncode == 3 and waited.stdout.strip().isdigit()


def test_submit_reads_sbatchs_input_variables(jobgate_cli: Run, client: Client,
                                              tmp_path: Path) -> None:
    # Over the script's lines, under the options, as with sbatch.
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -t 5:00\n#SBATCH --qos=low\ntrue\n")
    job_id = _submit(jobgate_cli, "--hold", "-J", "from-option", str(script),
                     SBATCH_TIMELIMIT="7:00", SBATCH_QOS="high", SBATCH_JOB_NAME="from-env")
    job = client.get(job_id)
    assert (job.time_limit, job.qos, job.name) == (420, "high", "from-option")


def test_submit_takes_sbatchs_slurm_options(jobgate_cli: Run, client: Client) -> None:
    job_id = _submit(jobgate_cli, "--hold", "-q", "debug", "--mail-type", "END",
                     "--no-requeue", "--open-mode", "append", "--signal", "B:USR1@30",
                     "--wrap", "true")
    assert client.get(job_id).qos == "debug"
    # The local cluster has no node features: refused, naming the option.
    refused = jobgate_cli("submit", "-C", "ib", "--exclusive", "--wrap", "true")
    assert refused.returncode == 1 and "constraint, exclusive" in refused.stderr


def test_submit_wait_on_an_array_waits_for_every_task(jobgate_cli: Run) -> None:
    # sbatch --wait: an array's exit code is its tasks' highest.
    waited = jobgate_cli("submit", "--wait", "--array", "0-2",
                         "--wrap", "sleep 0.3; exit $SLURM_ARRAY_TASK_ID")
    assert waited.returncode == 2, waited.stderr
    assert [line.split(None, 2)[2] for line in waited.stderr.splitlines()[1:]] == [
        "COMPLETED (exit 0)", "FAILED (exit 1)", "FAILED (exit 2)"]
    listed = json.loads(jobgate_cli("submit", "--wait", "--json", "--array", "0-1",
                                    "--wrap", "true").stdout)
    assert [(task["array_task_id"], task["state"]) for task in listed] == [
        (0, "COMPLETED"), (1, "COMPLETED")]


def test_sbatch_options_reach_the_job(jobgate_cli: Run, client: Client) -> None:
    job_id = _submit(jobgate_cli, "--wrap", "echo $A", "--export", "A=42", "--hold",
                     "--mem-per-cpu", "16M", "-d", "afterany:1", "-t", "3:00")
    job = client.get(job_id)
    assert job.held and job.memory_per_cpu == 16 and job.time_limit == 180
    assert job.dependencies == "afterany:1"
    array = _submit(jobgate_cli, "--wrap", "true", "--array", "0-1")
    assert client.get(array).id == array


def test_verbs_on_one_job(jobgate_cli: Run, client: Client) -> None:
    script = "trap 'echo usr1' USR1; for i in $(seq 600); do sleep 0.1; done"
    job_id = _submit(jobgate_cli, "--wrap", script, "--hold")
    assert "Held" in jobgate_cli("hold", str(job_id)).stdout
    modified = jobgate_cli("modify", str(job_id), "time=4:00", "name=renamed", "--json")
    assert json.loads(modified.stdout)[0]["time_limit"] == 240
    assert jobgate_cli("modify", str(job_id), "oops").returncode == 2
    assert jobgate_cli("release", str(job_id)).returncode == 0
    client.get(job_id).wait(until="RUNNING", timeout=WAIT)
    assert jobgate_cli("notify", str(job_id), "hello").returncode == 0
    assert jobgate_cli("signal", str(job_id), "-s", "USR1").returncode == 0
    assert "SUSPENDED" in jobgate_cli("suspend", str(job_id)).stdout
    assert "RUNNING" in jobgate_cli("resume", str(job_id)).stdout
    assert jobgate_cli("requeue", str(job_id), "--hold").returncode == 0
    assert client.get(job_id).wait(until="PENDING", timeout=WAIT) is JobState.PENDING
    assert jobgate_cli("cancel", str(job_id)).returncode == 0
    waited = jobgate_cli("wait", str(job_id))
    assert waited.returncode == 1 and "CANCELLED" in waited.stdout
    stats = jobgate_cli("stats", str(job_id), "--json")
    assert json.loads(stats.stdout)["id"] == job_id
    events = jobgate_cli("events", "--job", str(job_id))
    assert "-> CANCELLED" in events.stdout
    assert jobgate_cli("rm", str(job_id)).stdout.startswith("Deleted")
    missing = jobgate_cli("rm", str(job_id))
    assert missing.returncode == 1 and "error: job" in missing.stderr


def test_cancel_every_task_of_an_array_as_scancel_does(jobgate_cli: Run,
                                                       client: Client) -> None:
    array = _submit(jobgate_cli, "--wrap", "sleep 60", "--hold", "--array", "0-2")
    beside = _submit(jobgate_cli, "--wrap", "sleep 60", "--hold")
    listed = json.loads(jobgate_cli("ls", "--array", str(array), "--json").stdout)
    tasks = [job["id"] for job in listed]
    assert [job["array_task_id"] for job in listed] == [2, 1, 0] and beside not in tasks

    result = jobgate_cli("cancel", "--array", str(array))

    assert result.returncode == 0 and result.stdout.count("Cancelled") == 3
    assert {client.get(i).state for i in tasks} == {JobState.CANCELLED}
    assert client.get(beside).state is JobState.PENDING
    assert jobgate_cli("cancel", str(beside)).returncode == 0


def test_hold_and_release_every_task_of_an_array(jobgate_cli: Run, client: Client) -> None:
    array = _submit(jobgate_cli, "--wrap", "true", "--array", "0-2",
                    "--begin", "2999-01-01T00:00:00")
    tasks = [job.id for job in client.list(array=array)]

    held = jobgate_cli("hold", "--array", str(array))
    assert held.returncode == 0 and held.stdout.count("Held") == 3, held.stderr
    assert {client.get(i).state_reason for i in tasks} == {"JobHeldUser"}
    released = jobgate_cli("release", "--array", str(array))
    assert released.returncode == 0 and released.stdout.count("Released") == 3
    assert not any(client.get(i).held for i in tasks)
    assert jobgate_cli("hold").returncode == 2  # neither ids nor --array
    unknown = jobgate_cli("release", "--array", str(10**9))
    assert unknown.returncode == 1 and f"no array {10**9}" in unknown.stderr
    assert jobgate_cli("cancel", "--array", str(array)).returncode == 0


def test_cancel_by_tag_and_wait_for_many(jobgate_cli: Run, client: Client) -> None:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    held = [_submit(jobgate_cli, "--wrap", "sleep 60", "--hold", "--tag", tag)
            for _ in range(2)]
    result = jobgate_cli("cancel", "--tag", tag)
    assert result.returncode == 0 and result.stdout.count("Cancelled") == 2
    assert {client.get(i).state for i in held} == {JobState.CANCELLED}
    quick = [_submit(jobgate_cli, "--wrap", "true") for _ in range(3)]
    waited = jobgate_cli("wait", *map(str, quick), "--json")
    assert waited.returncode == 0
    assert {j["id"] for j in json.loads(waited.stdout)} == set(quick)
    slow = _submit(jobgate_cli, "--wrap", "sleep 60", "--hold")
    assert jobgate_cli("wait", str(slow), "--timeout", "0.5").returncode == 4
    assert jobgate_cli("cancel").returncode == 2


def test_looking_commands(jobgate_cli: Run) -> None:
    _submit(jobgate_cli, "--wrap", "true")
    watch = jobgate_cli("watch", "--count", "1")
    assert watch.returncode == 0 and "STATE" in watch.stdout
    usage = jobgate_cli("stats", "--by", "user", "--json")
    assert json.loads(usage.stdout)["group_by"] == "user"
    assert "TOTAL" in jobgate_cli("stats").stdout
    clusters = jobgate_cli("clusters", "--json")
    assert json.loads(clusters.stdout)[0]["name"]
    assert "CLUSTER" in jobgate_cli("clusters").stdout
    assert "->" in jobgate_cli("events").stdout
    lines = jobgate_cli("events", "--json").stdout.splitlines()
    assert json.loads(lines[0])["seq"] >= 1
