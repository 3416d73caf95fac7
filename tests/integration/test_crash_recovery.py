"""Nothing accepted is lost when the server is killed with SIGKILL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server_process import ServerProcess, wait_for


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "home")
    yield process
    process.stop()


def final(job: dict[str, object]) -> bool:
    return bool(job["final"])


def test_accepted_but_never_started_is_started_after_a_restart(server: ServerProcess) -> None:
    server.start(JOBGATE_RUN_ENGINE="false")  # accepts, but nothing is launched
    with server.client() as client:
        answer = client.post("/v1/jobs", json={"script": "#!/bin/bash\necho hi"})
        assert answer.status_code == 201
    server.kill()
    server.start()
    with server.client() as client:
        job = wait_for(client, answer.json()["id"], final)
        assert job["state"] == "COMPLETED"
        assert client.get(f"/v1/jobs/{job['id']}/stdout").text == "hi\n"


def test_kill_right_after_201(server: ServerProcess) -> None:
    server.start()
    with server.client() as client:
        ids = [client.post("/v1/jobs", json={"command": f"echo {i}"}).json()["id"]
               for i in range(5)]
    server.kill()
    server.start()
    with server.client() as client:
        for i, job_id in enumerate(ids):
            job = wait_for(client, job_id, final)
            assert job["state"] == "COMPLETED"
            assert client.get(f"/v1/jobs/{job_id}/stdout").text == f"{i}\n"
            events = client.get(f"/v1/jobs/{job_id}/events").json()["events"]
            assert [e["to_state"] for e in events] == ["PENDING", "RUNNING", "COMPLETED"]


def test_job_that_ended_while_the_server_was_down(server: ServerProcess, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    server.start()
    with server.client() as client:
        job_id = client.post("/v1/jobs", json={
            "command": f"touch {flag}; sleep 1; exit 3"}).json()["id"]
        wait_for(client, job_id, lambda j: j["state"] == "RUNNING")
    while not flag.exists():
        time.sleep(0.02)
    server.kill()
    time.sleep(2)  # the job ends while nobody is listening
    server.start()
    with server.client() as client:
        job = wait_for(client, job_id, final)
    assert (job["state"], job["exit_code"]) == ("FAILED", 3)


def test_job_still_running_at_restart_is_adopted(server: ServerProcess, tmp_path: Path) -> None:
    flag, go = tmp_path / "flag", tmp_path / "go"
    server.start()
    with server.client() as client:
        job_id = client.post("/v1/jobs", json={
            "command": f"touch {flag}; while [ ! -e {go} ]; do sleep 0.05; done; "
                       "echo finished; exit 5"}).json()["id"]
    while not flag.exists():
        time.sleep(0.02)
    server.kill()
    server.start()
    with server.client() as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "RUNNING"
        go.touch()  # it ends only now, under the new server
        job = wait_for(client, job_id, final)
        assert (job["state"], job["exit_code"]) == ("FAILED", 5)
        assert client.get(f"/v1/jobs/{job_id}/stdout").text == "finished\n"
        events = client.get(f"/v1/jobs/{job_id}/events").json()["events"]
    # One run, one start: adoption did not launch it a second time.
    assert [e["to_state"] for e in events] == ["PENDING", "RUNNING", "FAILED"]


def test_ten_running_jobs_survive_a_kill_and_run_once(
    server: ServerProcess, tmp_path: Path
) -> None:
    runs, go = tmp_path / "runs", tmp_path / "go"
    runs.mkdir()
    server.start(JOBGATE_CLUSTERS='{"local": {"cpus": 10}}')  # room for all ten at once
    with server.client() as client:
        ids = [client.post("/v1/jobs", json={
            "command": f"echo $SLURM_JOB_ID >> {runs}/$SLURM_JOB_ID; "
                       f"while [ ! -e {go} ]; do sleep 0.05; done; exit {i + 10}",
        }).json()["id"] for i in range(10)]
        for job_id in ids:
            wait_for(client, job_id, lambda j: j["state"] == "RUNNING")
    server.kill()
    go.touch()  # all ten end while no server is there to see it
    deadline = time.monotonic() + 30
    while len(list(runs.iterdir())) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.start()
    with server.client() as client:
        for i, job_id in enumerate(ids):
            job = wait_for(client, job_id, final)
            assert (job["state"], job["exit_code"]) == ("FAILED", i + 10)
    assert sorted(int(p.name) for p in runs.iterdir()) == sorted(ids)
    assert all(p.read_text() == f"{p.name}\n" for p in runs.iterdir())  # one run each
