"""The Slurm poller brings its next poll forward when a job's wrapper writes its
exit file (a look at the run directory, no call to Slurm), and still takes the
job's end from Slurm, whatever the file says. On the real cluster
(scripts/slurm.sh)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_slurm_api import Client

from jobgate.api.app import create_app
from jobgate.backends.slurm import SlurmBackend
from jobgate.backends.slurm.wrapper import RunDir
from jobgate.config import Settings
from slurm_cluster import slurm_cluster

__all__ = ["slurm_cluster"]


def gateway_api(tmp_path: Path, db_url: str, poll: float, poll_max: float
                ) -> Iterator[tuple[Client, SlurmBackend]]:
    settings = Settings.load(
        home=tmp_path / "home", database_url=db_url, engine_interval=0.1,
        clusters={"slurm": {"backend": "slurm", "job_dir": str(tmp_path / "shared"),
                            "poll_interval": poll, "poll_interval_max": poll_max}},
        default_cluster="slurm",
    )
    with TestClient(create_app(settings)) as client:
        backend = client.app.state.gateway.backends["slurm"]  # type: ignore[attr-defined]
        assert isinstance(backend, SlurmBackend)
        yield Client(client, settings.admin_token_path.read_text().strip()), backend


@pytest.fixture
def slow_polls(tmp_path: Path, db_url: str, slurm_cluster: str
               ) -> Iterator[tuple[Client, SlurmBackend]]:
    # Polls 5 s apart at the least, growing to a minute: a job's end is
    # learned at a poll its exit file asked for, or else long after.
    yield from gateway_api(tmp_path, db_url, 5.0, 60.0)


@pytest.fixture
def api(tmp_path: Path, db_url: str, slurm_cluster: str) -> Iterator[tuple[Client, SlurmBackend]]:
    yield from gateway_api(tmp_path, db_url, 0.25, 2.0)


def test_an_exit_file_brings_the_poll_for_the_end_forward(
        slow_polls: tuple[Client, SlurmBackend]) -> None:
    api, backend = slow_polls
    job = api.submit(command="sleep 1; exit 4")
    end = api.final(job["id"])
    assert (end["state"], end["exit_code"]) == ("FAILED", 4)
    assert backend.poller.exit_prompted_polls >= 1
    assert backend.poller.count() == 0  # nothing tracked: no more polls


def test_an_exit_file_saying_0_does_not_make_a_cancelled_job_completed(
        api: tuple[Client, SlurmBackend], tmp_path: Path) -> None:
    client, backend = api
    ready = tmp_path / "ready"
    job = client.submit(command=f"trap 'exit 0' TERM; touch {ready}; sleep 300 & wait")
    client.wait(job["id"], lambda j: j["state"] == "RUNNING" and ready.exists())
    client.post(f"/v1/jobs/{job['id']}/cancel")
    end = client.final(job["id"])
    outcome = RunDir(backend.root / "runs" / f"{job['id']}.0").outcome()
    assert outcome is not None and outcome.status.exit_code == 0  # the script's own word
    assert end["state"] == "CANCELLED"  # Slurm's

