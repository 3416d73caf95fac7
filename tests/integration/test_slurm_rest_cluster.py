"""A real `jobgate serve` whose jobgate.toml puts its default cluster on the test
Slurm through slurmrestd (transport "rest", JWT tokens from `scontrol token`):
jobs run end to end as slurmrestd's user, the verbs slurmrestd has work, those it
lacks are refused (501), never faked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server_process import ServerProcess, wait_for
from slurm_cluster import without_completing
from slurm_rest import RestCluster, rest_shared_dir, slurm_cluster, slurm_rest

__all__ = ["rest_shared_dir", "slurm_cluster", "slurm_rest"]

# Slurm starts jobs on scheduler passes a second apart: waits are longer than
# the local cluster's, never skipped.
WAIT = 120.0


def toml_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


@pytest.fixture
def api(tmp_path: Path, slurm_rest: RestCluster, rest_shared_dir: Path
        ) -> Iterator[httpx.Client]:
    home = tmp_path / "home"
    home.mkdir()
    cluster = slurm_rest.settings(rest_shared_dir / "jobs", poll_interval=0.25)
    (home / "jobgate.toml").write_text(
        'default_cluster = "hpc"\n\n[clusters.hpc]\n'
        + "".join(f"{key} = {toml_value(value)}\n" for key, value in cluster.items()))
    server = ServerProcess(home).start()
    try:
        with server.client() as client:
            client.timeout = httpx.Timeout(30)
            yield client
    finally:
        server.stop()


def final(client: httpx.Client, job_id: int) -> dict[str, Any]:
    job: dict[str, Any] = wait_for(client, job_id, lambda job: job["final"], timeout=WAIT)
    return job


def submit(client: httpx.Client, **spec: Any) -> dict[str, Any]:
    answer = client.post("/v1/jobs", json=spec)
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = answer.json()
    return job


def test_a_rest_cluster_runs_a_job_end_to_end(api: httpx.Client, rest_shared_dir: Path,
                                              slurm_rest: RestCluster) -> None:
    cluster = api.get("/v1/clusters/hpc").json()
    assert cluster["backend"] == "slurm" and cluster["default_partition"] == "debug"
    assert {p["name"]: p["max_time"] for p in cluster["partitions"]} == \
        {"debug": 3600, "long": 7 * 86400}
    assert {"suspend", "resume"}.isdisjoint(cluster["verbs"])
    assert cluster["resources"]["nodes"][0]["cpus"] >= 1

    job = submit(api, script="#!/bin/bash\necho \"on slurm as $(id -un)\"\nexit 3\n")
    assert job["cluster"] == "hpc"
    end = final(api, job["id"])
    assert (end["state"], end["exit_code"], end["exit_code_signal"]) == ("FAILED", 3, None)
    assert end["start_time"] is not None and end["end_time"] is not None
    events = [e["to_state"] for e in api.get(f"/v1/jobs/{job['id']}/events").json()["events"]]
    assert without_completing(events) == ["PENDING", "RUNNING", "FAILED"]
    assert api.get(f"/v1/jobs/{job['id']}/stdout").text == f"on slurm as {slurm_rest.user}\n"
    # Its default working directory was handed to the user it ran as.
    assert Path(end["working_directory"]).owner() == slurm_rest.user
    # A requeue is a new run, handed to slurmrestd as the first was.
    assert api.post(f"/v1/jobs/{job['id']}/requeue").status_code == 200
    again = wait_for(api, job["id"], lambda job: job["final"] and job["requeue_count"] == 1,
                     timeout=WAIT)
    assert (again["state"], again["exit_code"]) == ("FAILED", 3)
    # A requeued run appends to what the first wrote, as on the local cluster.
    assert api.get(f"/v1/jobs/{job['id']}/stdout").text == \
        f"on slurm as {slurm_rest.user}\n" * 2


@pytest.mark.slurm_exclusive  # its blocker takes every CPU of the node
def test_hold_release_cancel_and_a_missing_verb_on_a_rest_cluster(api: httpx.Client) -> None:
    cpus = api.get("/v1/clusters/hpc").json()["resources"]["nodes"][0]["cpus"]
    # The `long` partition runs one job per core: a job taking every core blocks the next.
    blocker = submit(api, command="sleep 120", partition="long", cpus_per_task=cpus)
    wait_for(api, blocker["id"], lambda job: job["state"] == "RUNNING", timeout=WAIT)
    suspended = api.post(f"/v1/jobs/{blocker['id']}/suspend")
    assert suspended.status_code == 501 and "suspend" in suspended.text
    queued = submit(api, command="echo ran", partition="long", cpus_per_task=cpus)
    wait_for(api, queued["id"], lambda job: job["state_reason"] == "Resources", timeout=WAIT)
    held = api.post(f"/v1/jobs/{queued['id']}/hold")
    assert held.status_code == 200, held.text
    assert (held.json()["held"], held.json()["state_reason"]) == (True, "JobHeldUser")
    assert api.post(f"/v1/jobs/{blocker['id']}/cancel").status_code == 200
    assert final(api, blocker["id"])["state"] == "CANCELLED"
    # A shorter limit is a change slurmrestd's user may make.
    moved = api.patch(f"/v1/jobs/{queued['id']}", json={"time_limit": 120})
    assert moved.status_code == 200, moved.text
    time.sleep(3)  # Slurm holds it: with the node free it still does not start
    still = api.get(f"/v1/jobs/{queued['id']}").json()
    assert (still["state"], still["state_reason"]) == ("PENDING", "JobHeldUser")
    assert api.post(f"/v1/jobs/{queued['id']}/release").status_code == 200
    end = final(api, queued["id"])
    assert (end["state"], end["time_limit"]) == ("COMPLETED", 120)
    assert api.get(f"/v1/jobs/{queued['id']}/stdout").text == "ran\n"
