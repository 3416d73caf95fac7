"""The pyslurm-style SDK against a real gateway: Job attributes and cache, verbs,
Jobs and aggregates, as_completed, submit_many, script files, output and files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobgate import (
    Client,
    ConflictError,
    InvalidSpecError,
    Job,
    Jobs,
    JobSpec,
    JobState,
    MissingJobError,
    WaitTimeout,
    as_completed,
)
from server_process import LiveServer

WAIT = 60
SLEEPER = "#!/bin/bash\necho started\nsleep 60\n"
# Survives SIGUSR1 (to it and to its sleeps) and says so.
PATIENT = ("#!/bin/bash\ntrap 'echo got USR1' USR1\necho started\n"
           "for i in $(seq 600); do sleep 0.1; done\n")


def test_attributes_are_named_as_pyslurms(client: Client, tag: str) -> None:
    job = client.submit(command="echo hi", job_name="attrs", cpus_per_task=2, mem="64M",
                        time="10:00", tags=[tag], dependency=None)
    assert job.wait(timeout=WAIT) is JobState.COMPLETED
    assert (job.name, job.cpus_per_task, job.ntasks, job.cpus) == ("attrs", 2, 1, 2)
    assert (job.memory, job.time_limit, job.tags) == (64, 600, [tag])
    assert job.user_name and job.partition and job.num_nodes == 1
    assert job.exit_code == 0 and job.exit_code_signal is None
    assert job.submit_time is not None and job.start_time is not None
    assert job.end_time is not None and job.end_time >= job.start_time
    assert job.run_time_remaining == 600 - job.run_time
    assert job.elapsed_cpu_time == job.run_time * 2
    assert job.array_id is None and job.array_task_id is None and job.requeue_count == 0
    assert Path(job.standard_output).name == f"jobgate-{job.id}.out"
    assert job.state_reason is None or isinstance(job.state_reason, str)
    data = job.to_dict()
    assert data["id"] == job.id and data["state"] == "COMPLETED"
    assert Job.load(job.id, client) == job


def test_cached_state_follows_auto_update(client: Client) -> None:
    job = client.submit(SLEEPER, hold=True, name="before")
    job.auto_update = False
    client.modify(job.id, name="after")  # changes the job behind the object's back
    assert job.name == "before"  # cached, auto_update off
    assert job.update(flushcache=True).name == "after"
    job.auto_update, job.update_cache_time = True, 0.0
    client.modify(job.id, name="again")
    assert job.name == "again"  # the cache had expired: read again
    job.update_cache_time = 3600.0
    client.modify(job.id, name="unseen")
    assert job.name == "again" and job.update().name == "again"
    job.cancel()
    assert job.wait(timeout=WAIT) is JobState.CANCELLED


def test_verbs_on_pending_and_running_jobs(client: Client, tmp_path: Path) -> None:
    job = client.submit(PATIENT, hold=True, working_directory=str(tmp_path))
    assert job.held and job.state is JobState.PENDING
    job.modify(time="5:00", job_name="renamed")
    assert (job.time_limit, job.name) == (300, "renamed")
    assert "trap" in job.get_batch_script()
    job.release()
    assert job.wait(until="RUNNING", timeout=WAIT) is JobState.RUNNING
    assert next(job.stdout(follow=True)) == "started\n"
    job.notify("hello from the SDK")
    job.send_signal("USR1")
    job.suspend()
    assert job.state is JobState.SUSPENDED
    job.unsuspend()
    assert job.state is JobState.RUNNING
    layout = job.get_resource_layout_per_node()
    assert len(layout) == 1 and "cpu_ids" in next(iter(layout.values()))
    job.requeue(hold=True)
    assert job.wait(until=JobState.PENDING, timeout=WAIT) is JobState.PENDING
    job.cancel()
    assert job.wait(timeout=WAIT) is JobState.CANCELLED
    stats = job.load_stats()
    assert stats["id"] == job.id and job.stats == stats
    with pytest.raises(ConflictError):
        job.cancel()
    job.delete()
    with pytest.raises(MissingJobError):
        job.reload()


def test_delete_with_force_abort_cancels_first(client: Client) -> None:
    job = client.submit(SLEEPER)
    with pytest.raises(ConflictError):
        job.delete()
    job.delete(force_abort=True)
    with pytest.raises(MissingJobError):
        client.get(job.id)


def test_wait_times_out_and_stdout_follows_until_the_end(client: Client) -> None:
    job = client.submit("#!/bin/bash\nfor i in 1 2 3; do echo line $i; sleep 0.3; done\n")
    with pytest.raises(WaitTimeout):
        client.submit(SLEEPER, hold=True).wait(timeout=0.5)
    assert list(job.stdout(follow=True)) == ["line 1\n", "line 2\n", "line 3\n"]
    assert job.wait(timeout=WAIT) is JobState.COMPLETED
    assert list(job.stdout()) == ["line 1\n", "line 2\n", "line 3\n"]
    assert list(job.stderr()) == []


def test_files_and_download(client: Client, tmp_path: Path) -> None:
    job = client.submit(command="mkdir out && echo 42 > out/answer.txt")
    assert job.wait(timeout=WAIT) is JobState.COMPLETED
    paths = {entry["path"] for entry in job.files()}
    assert "out/answer.txt" in paths
    assert [e["path"] for e in job.files("out")] == ["out/answer.txt"]
    written = job.download("out/answer.txt", tmp_path)
    assert written == tmp_path / "answer.txt" and written.read_text() == "42\n"
    assert job.download("out/answer.txt", tmp_path / "a.txt").read_text() == "42\n"
    with pytest.raises(MissingJobError):
        job.download("no-such-file", tmp_path)


def test_jobs_load_aggregates_reload_and_frozen(client: Client, tag: str) -> None:
    first = client.submit(command="true", ntasks=2, mem_per_cpu="10M", tags=[tag])
    second = client.submit(command="true", cpus_per_task=2, mem="100M", tags=[tag])
    jobs = Jobs.load(client, tag=tag)
    assert set(jobs) == {first.id, second.id}
    assert (jobs.cpus, jobs.ntasks, jobs.memory) == (4, 3, 2 * 10 + 100)
    for job in as_completed(jobs.values(), timeout=WAIT):
        assert job.state is JobState.COMPLETED
    jobs.reload()
    assert jobs.elapsed_cpu_time == sum(j.elapsed_cpu_time for j in jobs.values())
    frozen = client.jobs(tag=tag, frozen=True)
    third = client.submit(command="true", tags=[tag])
    assert set(frozen.reload()) == {first.id, second.id}
    assert set(jobs.reload()) == {first.id, second.id, third.id}
    assert jobs.as_list()[0].id == third.id


def test_as_completed_yields_in_the_order_jobs_end(client: Client) -> None:
    slow = client.submit(command="sleep 2")
    fast = client.submit(command="true")
    done = list(as_completed([slow, fast], timeout=WAIT))
    assert [job.id for job in done] == [fast.id, slow.id]
    with pytest.raises(WaitTimeout):
        list(as_completed([client.submit(SLEEPER, hold=True)], timeout=0.5))


def test_submit_many_in_one_batch(client: Client, tag: str) -> None:
    jobs = client.submit_many([JobSpec(command="echo a", tags=[tag]),
                               {"command": "echo b", "job_name": "b", "tags": [tag]}])
    assert [job.name for job in jobs][1] == "b"
    assert {job.id for job in client.list(tag=tag)} == {job.id for job in jobs}
    with pytest.raises(InvalidSpecError, match=r"jobs\[1\]"):
        client.submit_many([{"command": "true"}, {"command": "true", "memory": "lots"}])


def test_submit_script_path_reads_the_sbatch_lines(client: Client, tmp_path: Path) -> None:
    script = tmp_path / "analysis.sh"
    script.write_text("#!/bin/bash\n#SBATCH -t 2:00 --mem=32M\necho from file\n")
    job = client.submit(script_path=script, working_directory=str(tmp_path))
    assert (job.name, job.time_limit, job.memory) == ("analysis.sh", 120, 32)
    named = tmp_path / "named.sh"
    named.write_text("#!/bin/bash\n#SBATCH -J fromdirective\ntrue\n")
    assert client.submit(script_path=named).name == "fromdirective"
    assert job.wait(timeout=WAIT) is JobState.COMPLETED
    assert job.read_stdout() == "from file\n"


def test_jobspec_takes_sbatch_option_names() -> None:
    spec = JobSpec(job_name="x", mem="2G", time="1:00:00", wrap="hostname",
                   export="ALL,A=1", output="o-%j.txt", chdir="/tmp", dependency="afterok:1")
    assert (spec.name, spec.memory, spec.time_limit, spec.command) == \
        ("x", 2048, 3600, "hostname")
    assert (spec.environment, spec.stdout, spec.working_directory, spec.dependencies) == \
        ({"A": "1"}, "o-%j.txt", "/tmp", "afterok:1")
    with pytest.raises(InvalidSpecError, match="job_name or name"):
        JobSpec(job_name="x", name="y", command="true")


def test_dependencies_are_shown(client: Client) -> None:
    first = client.submit(command="true")
    second = client.submit(command="true", dependency=f"afterok:{first.id}")
    assert second.dependencies == f"afterok:{first.id}"
    assert second.wait(timeout=WAIT) is JobState.COMPLETED


def test_a_scripts_qos_is_shown_in_the_job_and_in_lists(client: Client) -> None:
    job = client.submit("#!/bin/bash\n#SBATCH --qos=debug\n#SBATCH --hold\ntrue\n")
    assert job.qos == "debug"
    assert [j.qos for j in client.list(state="PENDING") if j.id == job.id] == ["debug"]
    assert client.submit(command="true", hold=True).qos is None


def test_pyslurm_style_script_runs_with_the_import_changed(server: LiveServer,
                                                           tmp_path: Path) -> None:
    with Client(server.url, server.token) as client:
        job_id = client.submit(SLEEPER).id
    script = f"""
import jobgate as pyslurm

job = pyslurm.Job.load({job_id})
print(job.name, job.state, job.user_name, job.cpus, job.partition)
job.cancel()

jobs = pyslurm.Jobs.load()
print(len(jobs), jobs.memory, jobs.cpus, jobs.ntasks, jobs.elapsed_cpu_time)
for job_id, job in jobs.items():
    assert job.id == job_id
"""
    result = subprocess.run([sys.executable, "-c", script], env=server.env(), cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.split()[1] in ("PENDING", "RUNNING")
    assert int(second.split()[0]) >= 1


def test_default_client_reads_the_config_file(server: LiveServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JOBGATE_URL", "JOBGATE_TOKEN", "JOBGATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.toml"
    config.write_text(f'url = "{server.url}"\ntoken = "{server.token}"\nretries = 1\n')
    monkeypatch.setenv("JOBGATE_CLIENT_CONFIG", str(config))
    with Client() as client:
        assert client.url == server.url and client.retry.retries == 1
        job = client.submit(command="true")
    assert Job.load(job.id).id == job.id
    assert Job(job.id).name == job.name  # fetched on first read
    config.write_text('colour = "blue"\n')
    with pytest.raises(Exception, match="unknown keys"):
        Client()
