"""DELETE /v1/jobs/{id}: tombstones, the files jobgate made, force on active jobs."""

from __future__ import annotations

import time
from pathlib import Path

from api_client import Api

from jobgate.config import Settings
from jobgate.store.jobs import JobRepository


def wait_until(check: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def run_dirs(settings: Settings, job_id: int) -> list[Path]:
    return sorted((settings.resolved_home / "runs").glob(f"{job_id}.*"))


def tombstone(api: Api, job_id: int) -> tuple[str, bool]:
    with api.gateway.sessions() as session:
        row = JobRepository(session).get(job_id, include_deleted=True)
        assert row is not None
        return row.state, row.deleted_at is not None


def test_delete_an_ended_job(api: Api, settings: Settings) -> None:
    job = api.submit(command="echo hi > made-here.txt; echo out")
    api.wait_final(job["id"])
    workdir = Path(job["working_directory"])
    assert workdir == settings.jobs_dir / str(job["id"])
    assert (workdir / "made-here.txt").exists() and run_dirs(settings, job["id"])

    answer = api.client.delete(f"/v1/jobs/{job['id']}", headers=api.headers)
    assert answer.status_code == 204 and answer.content == b""

    assert not workdir.exists() and run_dirs(settings, job["id"]) == []
    for path in ("", "/events", "/stdout", "/files", "/script", "/stats"):
        assert api.get(f"/v1/jobs/{job['id']}{path}").status_code == 404, path
    assert job["id"] not in [j["id"] for j in api.get("/v1/jobs").json()["jobs"]]
    assert api.post(f"/v1/jobs/{job['id']}/requeue").status_code == 404
    assert api.client.delete(f"/v1/jobs/{job['id']}", headers=api.headers).status_code == 404
    # The ledger keeps the row and the log its events, the last one `deleted`.
    assert tombstone(api, job["id"]) == ("COMPLETED", True)
    events = api.get("/v1/events", params={"job_id": job["id"]}).json()["events"]
    assert events[-1]["reason"] == "deleted by admin"
    assert events[-1]["data"] == {"verb": "delete", "deleted": True}
    assert [e["to_state"] for e in events][:1] == ["PENDING"]
    # Ids are never reused, even of the newest job (SQLite would reuse a freed max id).
    assert api.submit(command="true", hold=True)["id"] == job["id"] + 1


def test_an_active_job_needs_force(api: Api) -> None:
    job = api.submit(command="true", hold=True)
    refused = api.client.delete(f"/v1/jobs/{job['id']}", headers=api.headers)
    assert refused.status_code == 409
    assert refused.json()["details"] == {"state": "PENDING"}
    assert "cancel it first, or pass force=true" in refused.json()["message"]
    assert api.get(f"/v1/jobs/{job['id']}").json()["state"] == "PENDING"


def test_force_deletes_a_pending_job_which_never_runs(api: Api, tmp_path: Path,
                                                      settings: Settings) -> None:
    marker = tmp_path / "ran"
    job = api.submit(command=f"touch {marker}", hold=True)
    answer = api.client.delete(f"/v1/jobs/{job['id']}", params={"force": "true"},
                               headers=api.headers)
    assert answer.status_code == 204
    assert tombstone(api, job["id"]) == ("CANCELLED", True)
    assert not (settings.jobs_dir / str(job["id"])).exists()
    # Released or not, a deleted job is never started: the engine skips tombstones.
    later = api.submit(command="true")
    api.wait_final(later["id"])
    assert not marker.exists()


def test_force_deletes_a_running_job_and_its_files_once_it_ended(
        api: Api, tmp_path: Path, settings: Settings) -> None:
    started = tmp_path / "started"
    job = api.submit(command=f"touch {started}; echo partial > part.txt; sleep 300")
    wait_until(started.exists, "the job never started")
    answer = api.client.delete(f"/v1/jobs/{job['id']}", params={"force": "true"},
                               headers=api.headers)
    assert answer.status_code == 204
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 404  # gone from views at once
    wait_until(lambda: tombstone(api, job["id"])[0] == "CANCELLED", "never cancelled")
    wait_until(lambda: not (settings.jobs_dir / str(job["id"])).exists()
               and not run_dirs(settings, job["id"]), "its files were not removed")


def test_a_working_directory_the_user_chose_is_left_alone(
        api: Api, tmp_path: Path, settings: Settings) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    job = api.submit(command="echo result > result.txt", working_directory=str(mine))
    api.wait_final(job["id"])
    assert run_dirs(settings, job["id"])
    assert api.client.delete(f"/v1/jobs/{job['id']}", headers=api.headers).status_code == 204
    assert (mine / "keep.txt").read_text() == "precious"
    assert (mine / "result.txt").exists()
    assert (mine / f"jobgate-{job['id']}.out").exists()
    assert run_dirs(settings, job["id"]) == []


def test_a_user_deletes_only_their_own_jobs(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    bob = api.add_user("bob", "bob-token")
    job = api.post("/v1/jobs", json={"command": "true"}, headers=ana).json()
    api.wait_final(job["id"])
    assert api.client.delete(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
    assert api.client.delete(f"/v1/jobs/{job['id']}", headers=ana).status_code == 204
    assert api.client.delete("/v1/jobs/999999", headers=ana).status_code == 404
    assert api.client.delete(f"/v1/jobs/{job['id']}").status_code == 401


def test_following_the_output_of_a_job_that_is_deleted_ends(api: Api, tmp_path: Path) -> None:
    started = tmp_path / "started"
    job = api.submit(command=f"echo first; touch {started}; sleep 300")
    wait_until(started.exists, "the job never started")
    chunks: list[bytes] = []
    with api.client.stream("GET", f"/v1/jobs/{job['id']}/stdout", params={"follow": "true"},
                           headers=api.headers) as answer:
        for chunk in answer.iter_bytes():
            chunks.append(chunk)
            if b"first" in b"".join(chunks):
                deleted = api.client.delete(f"/v1/jobs/{job['id']}", params={"force": "true"},
                                            headers=api.headers)
                assert deleted.status_code == 204
    assert b"".join(chunks) == b"first\n"
