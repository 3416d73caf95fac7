"""Real Slurm going away under jobgate: the controller stopped while jobs run,
and a cluster without accounting whose memory forgot a job. jobgate shows the
last known state (or UNKNOWN) meanwhile, never a wrong final state, and
converges afterwards.

These tests restart the cluster's daemons; each puts back the default
configuration at its end. They cancel every job and switch accounting off, so
whatever Slurm test ran beside them would fail: `make test` runs them apart,
after the rest (the slurm_drill mark)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_slurm_api import Client

from jobgate.api.app import create_app
from jobgate.config import Settings
from slurm_cluster import SCRIPT, slurm_cluster

__all__ = ["slurm_cluster"]

pytestmark = pytest.mark.slurm_drill


def slurm(*args: str, **env: str) -> None:
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=os.environ | env, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def restored(slurm_cluster: str) -> Iterator[None]:
    yield
    slurm("up")  # the default configuration again (slurmdbd, MinJobAge 300)


def settings_for(tmp_path: Path, db_url: str) -> Settings:
    return Settings.load(
        home=tmp_path / "home", database_url=db_url, kill_wait=1.0, engine_interval=0.1,
        clusters={"slurm": {"backend": "slurm", "job_dir": str(tmp_path / "shared"),
                            "poll_interval": 0.25, "poll_interval_max": 1.0}},
        default_cluster="slurm",
    )


def ours_in_squeue(gateway: str) -> list[str]:
    out = subprocess.run(["squeue", "--json"], capture_output=True, text=True, check=True)
    return [str(job["job_id"]) for job in json.loads(out.stdout)["jobs"]
            if str(job.get("comment") or "").startswith(f"jobgate:{gateway}:")]


def watch(api: Client, job_id: int, seconds: float) -> set[str]:
    """The states the job shows over `seconds`."""
    seen = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(api.get(f"/v1/jobs/{job_id}")["state"])
        time.sleep(0.2)
    return seen


def test_controller_down_while_a_job_runs_then_up(
    tmp_path: Path, db_url: str, restored: None
) -> None:
    settings = settings_for(tmp_path, db_url)
    with TestClient(create_app(settings)) as client:
        api = Client(client, settings.admin_token_path.read_text().strip())
        job = api.submit(command="sleep 6; exit 3")
        api.wait(job["id"], lambda j: j["state"] == "RUNNING")
        slurm("down", "--keep-jobs")  # the job goes on, unseen; it ends meanwhile
        assert watch(api, job["id"], 8.0) <= {"RUNNING", "UNKNOWN"}
        slurm("up")
        end = api.final(job["id"])
        assert (end["state"], end["exit_code"]) == ("FAILED", 3)


def test_make_slurm_down_cancels_and_jobgate_says_so(
    tmp_path: Path, db_url: str, restored: None
) -> None:
    settings = settings_for(tmp_path, db_url)
    with TestClient(create_app(settings)) as client:
        api = Client(client, settings.admin_token_path.read_text().strip())
        job = api.submit(command="sleep 60")
        api.wait(job["id"], lambda j: j["state"] == "RUNNING")
        slurm("down")  # cancels every job, then stops the daemons
        # COMPLETING while the cancelled job's processes are cleaned up, if a poll lands then
        assert watch(api, job["id"], 3.0) <= {"RUNNING", "UNKNOWN", "COMPLETING", "CANCELLED"}
        slurm("up")
        assert api.final(job["id"])["state"] == "CANCELLED"


def test_without_accounting_a_forgotten_job_ends_by_its_exit_file(
    tmp_path: Path, db_url: str, restored: None
) -> None:
    slurm("up", SLURM_ACCOUNTING="none", SLURM_MINJOBAGE="2")
    settings = settings_for(tmp_path, db_url)
    with TestClient(create_app(settings)) as client:
        api = Client(client, settings.admin_token_path.read_text().strip())
        job = api.submit(command="sleep 1; exit 3")
        api.wait(job["id"], lambda j: j["state"] == "RUNNING")
    # The gateway is gone; the job ends, and Slurm forgets it (no accounting).
    gateway = (settings.resolved_home / "slurm-slurm.gateway").read_text().strip()
    deadline = time.monotonic() + 240
    while ours_in_squeue(gateway) and time.monotonic() < deadline:
        time.sleep(1)
    assert ours_in_squeue(gateway) == []
    with TestClient(create_app(settings)) as client:
        api = Client(client, settings.admin_token_path.read_text().strip())
        end = api.final(job["id"])
        assert (end["state"], end["exit_code"]) == ("FAILED", 3)
