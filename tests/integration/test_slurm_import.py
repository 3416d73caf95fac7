"""Jobs submitted to the real Slurm cluster (scripts/slurm.sh) with plain sbatch,
outside jobgate, imported into the ledger when the cluster's `import_jobs` is on:
marked as such, followed to their end, owned by the jobgate user of the same
name, listed, counted, and refused any verb (501). A job of the gateway's own is
never imported, even with its comment tag changed by hand.

The cluster is shared with other tests: jobs other gateways submit meanwhile are
outside jobs too, so each test looks only at the jobs it made."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_slurm_api import WAIT, Client

from jobgate.api.app import create_app
from jobgate.backends.slurm.importer import Importer
from jobgate.backends.slurm.parsing import SlurmJob
from jobgate.backends.slurm.poller import Poller
from jobgate.backends.slurm.transport import CliTransport
from jobgate.config import Settings
from jobgate.domain.registry import ledger_columns, parse_record
from slurm_cluster import slurm_cluster

__all__ = ["slurm_cluster"]

USER = "slurmtest"  # scripts/slurm.sh's unprivileged user


def sbatch_outside(script: str, name: str) -> str:
    """Submit as USER with plain sbatch (no jobgate tag in the comment)."""
    done = subprocess.run(
        ["sbatch", "--parsable", f"--uid={USER}", f"--job-name={name}", "--chdir=/tmp",
         "--output=/dev/null", "--partition=debug", "--time=5", "--wrap", script],
        capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip().split(";")[0]


def slurm_id_of(job: dict[str, Any]) -> str | None:
    extra = (job.get("registry_data") or {}).get("additional_data") or {}
    return extra.get("slurm_job_id") if extra.get("imported_from") == "slurm" else None


def imported(api: Client, slurm_id: str) -> dict[str, Any] | None:
    jobs = api.get("/v1/jobs?cluster=slurm&limit=1000")["jobs"]
    return next((job for job in jobs if slurm_id_of(job) == slurm_id), None)


def wait_for(what: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


def events(api: Client, job_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.get(f"/v1/jobs/{job_id}/events")["events"]
    return found


@pytest.fixture
def gateway(tmp_path: Path, db_url: str, slurm_cluster: str
            ) -> Iterator[Callable[[bool], tuple[Client, Client]]]:
    """Start a gateway in front of the cluster, importing or not: its admin's
    client, and the client of a jobgate user named as the Slurm user."""
    clients: list[TestClient] = []

    def start(import_jobs: bool) -> tuple[Client, Client]:
        settings = Settings.load(
            home=tmp_path / "home", database_url=db_url, kill_wait=1.0, engine_interval=0.1,
            clusters={"slurm": {"backend": "slurm", "job_dir": str(tmp_path / "shared"),
                                "poll_interval": 0.25, "poll_interval_max": 1.0,
                                "import_jobs": import_jobs}},
            default_cluster="slurm",
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        admin = Client(client, settings.admin_token_path.read_text().strip())
        admin.client.post("/v1/admin/users", json={"name": USER}, headers=admin.headers)
        token = admin.client.post("/v1/admin/tokens", json={"user": USER},
                                  headers=admin.headers).json()["token"]
        return admin, Client(client, token)

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def test_a_job_sbatched_outside_jobgate_is_imported_and_followed(
        gateway: Callable[[bool], tuple[Client, Client]]) -> None:
    api, user = gateway(True)
    # Slurm's times are whole seconds.
    began = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    tag = uuid.uuid4().hex[:8]
    failing = sbatch_outside("sleep 5; exit 3", f"outside-fails-{tag}")
    passing = sbatch_outside("sleep 5", f"outside-passes-{tag}")

    first = wait_for(lambda: imported(api, failing))
    assert first["state"] in ("PENDING", "RUNNING"), first
    assert (first["source"], first["user_name"], first["name"]) == (
        "registry", USER, f"outside-fails-{tag}")
    assert (first["cluster"], first["partition"], first["working_directory"]) == (
        "slurm", "debug", "/tmp")
    assert first["time_limit"] == 300 and first["cpus"] >= 1
    extra = first["registry_data"]["additional_data"]
    assert (extra["imported_from"], extra["cluster"]) == ("slurm", "slurm")
    for verb in ("cancel", "hold"):
        refused = api.client.post(f"/v1/jobs/{first['id']}/{verb}", headers=api.headers)
        assert refused.status_code == 501, refused.text

    end = api.final(first["id"])
    assert (end["state"], end["exit_code"], end["exit_code_signal"]) == ("FAILED", 3, None)
    assert end["start_time"] is not None and end["end_time"] is not None
    states = [e["to_state"] for e in events(api, first["id"])]
    assert states[0] in ("PENDING", "RUNNING") and states[-1] == "FAILED"
    assert "COMPLETED" not in states and "UNKNOWN" not in states
    done = api.final(wait_for(lambda: imported(api, passing))["id"])
    assert (done["state"], done["exit_code"]) == ("COMPLETED", 0)

    # The jobgate user of the same name owns them: listed, filtered, counted.
    mine = {job["id"] for job in user.get("/v1/jobs?cluster=slurm&state=FAILED")["jobs"]}
    assert first["id"] in mine and done["id"] not in mine
    report = user.get(f"/v1/stats?group_by=state&since={began.replace('+', '%2B')}")
    counts = {group["key"]: group["count"] for group in report["groups"]}
    assert counts.get("FAILED", 0) >= 1 and counts.get("COMPLETED", 0) >= 1
    by_cluster = api.get("/v1/stats?group_by=cluster")
    assert any(group["key"] == "slurm" for group in by_cluster["groups"])


def test_with_the_option_off_nothing_is_imported(
        gateway: Callable[[bool], tuple[Client, Client]]) -> None:
    api, _ = gateway(False)
    outside = sbatch_outside("sleep 1", f"outside-{uuid.uuid4().hex[:8]}")
    # While the gateway's own job is tracked, its poller reads squeue each cycle.
    job = api.submit(command="sleep 3")
    api.final(job["id"])
    wait_for(lambda: subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", outside, "-o", "%T"], capture_output=True,
        text=True, check=False).stdout.strip() not in ("", "PENDING", "RUNNING"))
    later = api.submit(command="true")  # a few cycles more
    api.final(later["id"])
    jobs = api.get("/v1/jobs?cluster=slurm&limit=1000")["jobs"]
    assert [(j["id"], j["source"]) for j in jobs] == [
        (later["id"], "gateway"), (job["id"], "gateway")]


def test_a_gateway_job_is_never_imported_even_with_its_tag_changed(
        gateway: Callable[[bool], tuple[Client, Client]]) -> None:
    api, _ = gateway(True)
    job = api.submit(command="sleep 8; exit 3", name=f"ours-{uuid.uuid4().hex[:8]}")
    api.wait(job["id"], lambda j: j["state"] == "RUNNING")
    slurm_id = next(e["data"]["slurm_job_id"] for e in events(api, job["id"])
                    if "slurm_job_id" in e["data"])
    # Without its tag the importer takes it for an outside job; the ledger says no.
    subprocess.run(["scontrol", "update", f"JobId={slurm_id}", "Comment=changed by hand"],
                   check=True, capture_output=True, timeout=60)
    end = api.final(job["id"])
    assert (end["state"], end["exit_code"]) == ("FAILED", 3)
    assert imported(api, slurm_id) is None
    ours = [j for j in api.get("/v1/jobs?cluster=slurm&limit=1000")["jobs"]
            if j["name"] == job["name"]]
    assert [j["id"] for j in ours] == [job["id"]]


class SqueueWithout(CliTransport):
    """The real cluster, with chosen jobs left out of squeue's answer: what a
    poller sees once Slurm has let a job go (MinJobAge) before a cycle saw it end."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: set[str] = set()

    def queue(self, comment_prefix: str = "") -> list[SlurmJob]:
        return [job for job in super().queue(comment_prefix) if job.native_id not in self.hidden]


def test_an_outside_job_gone_from_squeue_gets_its_end_from_sacct(slurm_cluster: str) -> None:
    transport = SqueueWithout()
    batches: list[list[dict[str, Any]]] = []
    poller = Poller(transport, "import-test", lambda _updates: None,
                    importer=Importer("slurm", "import-test", batches.append))
    slurm_id = sbatch_outside("sleep 2; exit 3", f"outside-{uuid.uuid4().hex[:8]}")

    def last_record() -> dict[str, Any] | None:
        poller.cycle()
        found = [r for batch in batches for r in batch if str(r["job_id"]) == slurm_id]
        return found[-1] if found else None

    running = wait_for(lambda: (r := last_record()) and r["state"] == "RUNNING" and r)
    transport.hidden.add(slurm_id)
    wait_for(lambda: subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "State", "-j", slurm_id], capture_output=True,
        text=True, check=False).stdout.strip() == "FAILED")
    ended = wait_for(lambda: (r := last_record()) and r["state"] != "RUNNING" and r)
    assert (ended["state"], ended["exit_code"]) == ("FAILED", "3:0")
    assert poller.calls["sacct"] >= 1 and poller.accounting is True
    # What sacct's lines lack is the record's from squeue.
    for name in ("nodes", "allocated_resources", "working_directory", "time_limit", "user"):
        assert ended[name] == running[name]
    stored = ledger_columns(parse_record(ended))
    assert (stored["state"], stored["exit_code"], stored["user_name"]) == ("FAILED", 3, USER)
