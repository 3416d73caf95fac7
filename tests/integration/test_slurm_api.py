"""Jobs through the API onto a real Slurm cluster (scripts/slurm.sh), beside the
local cluster in the same gateway: the same script, the same states and codes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jobgate.api.app import create_app
from jobgate.config import Settings
from slurm_cluster import slurm_cluster, without_completing

__all__ = ["slurm_cluster"]

# Slurm starts jobs on scheduler passes a second apart: waits are longer than
# the local cluster's, never skipped.
WAIT = 120.0


class Client:
    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Any:
        answer = self.client.get(path, headers=self.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: dict[str, Any] | None = None, status: int = 200) -> Any:
        answer = self.client.post(path, json=body, headers=self.headers)
        assert answer.status_code == status, answer.text
        return answer.json()

    def submit(self, **spec: Any) -> dict[str, Any]:
        job: dict[str, Any] = self.post("/v1/jobs", spec, status=201)
        return job

    def wait(self, job_id: int, until: Callable[[dict[str, Any]], bool],
             timeout: float = WAIT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.get(f"/v1/jobs/{job_id}")
            if until(job):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id}: still {job['state']} after {timeout}s")

    def final(self, job_id: int) -> dict[str, Any]:
        return self.wait(job_id, lambda job: bool(job["final"]))


@pytest.fixture
def api(tmp_path: Path, db_url: str, slurm_cluster: str) -> Iterator[Client]:
    settings = Settings.load(
        home=tmp_path / "home", database_url=db_url, kill_wait=1.0, engine_interval=0.1,
        clusters={"local": {}, "slurm": {"backend": "slurm", "job_dir": str(tmp_path / "shared"),
                                         "poll_interval": 0.25}},
        default_cluster="slurm",
    )
    with TestClient(create_app(settings)) as client:
        yield Client(client, settings.admin_token_path.read_text().strip())


def events(api: Client, job_id: int) -> list[str]:
    return [e["to_state"] for e in api.get(f"/v1/jobs/{job_id}/events")["events"]]


def slurm_job_id(api: Client, job_id: int) -> int:
    return int(next(e["data"]["slurm_job_id"] for e in api.get(f"/v1/jobs/{job_id}/events")
                    ["events"] if "slurm_job_id" in e["data"]))


def test_a_job_that_exits_3_is_failed_with_exit_code_3(api: Client, tmp_path: Path) -> None:
    job = api.submit(script="#!/bin/bash\necho on slurm\nexit 3\n")
    assert (job["cluster"], job["partition"]) == ("slurm", "debug")  # the cluster's default
    end = api.final(job["id"])
    assert (end["state"], end["exit_code"], end["exit_code_signal"]) == ("FAILED", 3, None)
    assert end["start_time"] is not None and end["end_time"] is not None
    assert without_completing(events(api, job["id"])) == ["PENDING", "RUNNING", "FAILED"]
    assert api.client.get(f"/v1/jobs/{job['id']}/stdout", headers=api.headers).text == \
        "on slurm\n"


def test_partitions_and_limits_come_from_the_cluster(api: Client) -> None:
    cluster = api.get("/v1/clusters/slurm")
    assert cluster["backend"] == "slurm" and cluster["default_partition"] == "debug"
    limits = {p["name"]: p for p in cluster["partitions"]}
    assert (limits["debug"]["max_time"], limits["long"]["max_time"]) == (3600, 7 * 86400)
    assert cluster["resources"]["nodes"][0]["cpus"] >= 1
    refused = api.client.post("/v1/jobs", json={"command": "true", "time_limit": "2:00:00"},
                              headers=api.headers)
    assert refused.status_code == 422 and "debug" in refused.text
    assert api.client.post("/v1/jobs", json={"command": "true", "partition": "nope"},
                           headers=api.headers).status_code == 422


@pytest.mark.slurm_exclusive  # its blocker takes every CPU of the node
def test_a_job_queued_in_slurm_shows_why_and_can_be_cancelled(api: Client) -> None:
    # The `long` partition runs one job per core: a job taking every core blocks the next.
    cpus = api.get("/v1/clusters/slurm")["resources"]["nodes"][0]["cpus"]
    first = api.submit(command="sleep 120", partition="long", cpus_per_task=cpus)
    api.wait(first["id"], lambda job: job["state"] == "RUNNING")
    second = api.submit(command="echo never", partition="long", cpus_per_task=cpus)
    queued = api.wait(second["id"], lambda job: job["state_reason"] == "Resources")
    assert queued["state"] == "PENDING" and queued["start_time"] is None
    api.post(f"/v1/jobs/{second['id']}/cancel")
    api.post(f"/v1/jobs/{first['id']}/cancel")
    ended = api.final(second["id"])
    assert (ended["state"], ended["start_time"]) == ("CANCELLED", None)
    assert api.final(first["id"])["state"] == "CANCELLED"


SCRIPT = """#!/bin/bash
#SBATCH --job-name=sweep
#SBATCH --array=0-3%2
#SBATCH --time=5
echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT"
if [ "$SLURM_ARRAY_TASK_ID" = 2 ]; then exit 2; fi
"""


def run_sweep(api: Client, cluster: str) -> list[tuple[str, int | None, str]]:
    """An unchanged Slurm script with an array and a dependency on it."""
    first = api.submit(script=SCRIPT, cluster=cluster)
    after = api.submit(command="echo after the sweep", cluster=cluster,
                       dependencies=f"afterany:{first['id']}")
    tasks = [job for job in api.get(f"/v1/jobs?limit=100&cluster={cluster}")["jobs"]
             if job.get("array_job_id") == first["id"]]
    assert len(tasks) == 4
    outcome = []
    for task in sorted(tasks, key=lambda job: job["array_task_id"]):
        end = api.final(task["id"])
        output = api.client.get(f"/v1/jobs/{task['id']}/stdout", headers=api.headers).text
        outcome.append((end["state"], end["exit_code"], output))
    end = api.final(after["id"])
    output = api.client.get(f"/v1/jobs/{after['id']}/stdout", headers=api.headers).text
    outcome.append((end["state"], end["exit_code"], output))
    return outcome


def test_a_scripts_mail_qos_and_requeue_directives_reach_slurm(api: Client) -> None:
    job = api.submit(script="#!/bin/bash\n#SBATCH --mail-type=END,FAIL\n"
                            "#SBATCH --mail-user=ann@example.org\n#SBATCH --qos=normal\n"
                            "#SBATCH --no-requeue\ntrue\n")
    assert api.final(job["id"])["state"] == "COMPLETED"
    # slurmctld keeps an ended job in memory for minutes (MinJobAge).
    shown = subprocess.run(["scontrol", "show", "job", str(slurm_job_id(api, job["id"]))],
                           capture_output=True, text=True, check=True).stdout.split()
    assert {"MailType=END,FAIL", "MailUser=ann@example.org", "QOS=normal",
            "Requeue=0"} <= set(shown)


@pytest.mark.slurm_exclusive  # it waits for the node to be free of other jobs
def test_exclusive_and_constraint_reach_slurm(api: Client) -> None:
    cpus = api.get("/v1/clusters/slurm")["resources"]["nodes"][0]["cpus"]
    job = api.submit(command="true", exclusive=True)
    assert api.final(job["id"])["state"] == "COMPLETED"
    shown = subprocess.run(["scontrol", "show", "job", str(slurm_job_id(api, job["id"]))],
                           capture_output=True, text=True, check=True).stdout.split()
    assert f"NumCPUs={cpus}" in shown  # the whole node, though it asked for one CPU
    # Slurm judges features: a node has none of this name.
    refused = api.final(api.submit(command="true", constraint="no-such-feature")["id"])
    assert refused["state"] == "FAILED"
    assert "Invalid feature specification" in refused["state_reason"]


def test_an_array_with_a_dependency_runs_the_same_on_local_and_slurm(api: Client) -> None:
    on_local = run_sweep(api, "local")
    on_slurm = run_sweep(api, "slurm")
    assert on_slurm == on_local == [
        ("COMPLETED", 0, "task 0 of 4\n"), ("COMPLETED", 0, "task 1 of 4\n"),
        ("FAILED", 2, "task 2 of 4\n"), ("COMPLETED", 0, "task 3 of 4\n"),
        ("COMPLETED", 0, "after the sweep\n"),
    ]


@pytest.mark.slurm_exclusive  # its blocker takes every CPU of the node
def test_hold_release_and_modify_a_job_in_slurms_queue(api: Client) -> None:
    cpus = api.get("/v1/clusters/slurm")["resources"]["nodes"][0]["cpus"]
    blocker = api.submit(command="sleep 120", partition="long", cpus_per_task=cpus)
    api.wait(blocker["id"], lambda job: job["state"] == "RUNNING")
    queued = api.submit(command="echo ran", partition="long", cpus_per_task=cpus)
    api.wait(queued["id"], lambda job: job["state_reason"] == "Resources")
    held = api.post(f"/v1/jobs/{queued['id']}/hold")
    assert (held["held"], held["state_reason"]) == (True, "JobHeldUser")
    # Slurm holds it: with the node free it still does not start.
    api.post(f"/v1/jobs/{blocker['id']}/cancel")
    assert api.final(blocker["id"])["state"] == "CANCELLED"
    moved = api.client.patch(f"/v1/jobs/{queued['id']}", json={"time_limit": 120},
                             headers=api.headers)
    assert moved.status_code == 200, moved.text
    frozen = api.client.patch(f"/v1/jobs/{queued['id']}", json={"ntasks": 2},
                              headers=api.headers)
    assert frozen.status_code == 409 and "ntasks" in frozen.text
    time.sleep(3)
    assert api.get(f"/v1/jobs/{queued['id']}")["state"] == "PENDING"
    api.post(f"/v1/jobs/{queued['id']}/release")
    end = api.final(queued["id"])
    assert (end["state"], end["time_limit"]) == ("COMPLETED", 120)
