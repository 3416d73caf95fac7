"""The control verbs over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

from api_client import Api

from jobgate.service.auth import Principal


def wait_state(api: Api, job_id: int, state: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, object] = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] == state:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never {state}")


def wait_file(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_held_at_submit_then_released(api: Api) -> None:
    job = api.submit(command="echo ran", hold=True)
    assert (job["held"], job["state_reason"]) == (True, "JobHeldUser")
    time.sleep(0.5)
    assert api.get(f"/v1/jobs/{job['id']}").json()["state"] == "PENDING"
    released = api.post(f"/v1/jobs/{job['id']}/release").json()
    assert released["held"] is False
    assert api.wait_final(job["id"])["state"] == "COMPLETED"


def test_admin_hold_cannot_be_released_by_a_user(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    job = api.post("/v1/jobs", json={"command": "true", "hold": True}, headers=ana).json()
    assert api.post(f"/v1/jobs/{job['id']}/hold", json={"mode": "admin"},
                    headers=ana).status_code == 403
    held = api.post(f"/v1/jobs/{job['id']}/hold", json={"mode": "admin"}).json()
    assert held["state_reason"] == "JobHeldAdmin"
    refused = api.post(f"/v1/jobs/{job['id']}/release", headers=ana)
    assert refused.status_code == 403
    assert api.post(f"/v1/jobs/{job['id']}/release").status_code == 200
    assert api.post(f"/v1/jobs/{job['id']}/release").status_code == 409  # not held now


def test_suspend_resume_signal_notify(api: Api, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    job = api.submit(command=f"trap 'echo got USR1' USR1; touch {flag}; "
                             "while true; do sleep 0.05; done")
    wait_file(flag)
    assert api.post(f"/v1/jobs/{job['id']}/suspend").json()["state"] == "SUSPENDED"
    assert api.post(f"/v1/jobs/{job['id']}/suspend").status_code == 409
    assert api.post(f"/v1/jobs/{job['id']}/resume").json()["state"] == "RUNNING"
    assert api.post(f"/v1/jobs/{job['id']}/signal", json={"signal": "USR1"}).status_code == 200
    assert api.post(f"/v1/jobs/{job['id']}/signal",
                    json={"signal": "NOPE"}).status_code == 422
    assert api.post(f"/v1/jobs/{job['id']}/notify", json={"message": "hi"}).status_code == 200
    deadline = time.monotonic() + 10
    out = ""
    while time.monotonic() < deadline and "got USR1" not in out:
        out = api.get(f"/v1/jobs/{job['id']}/stdout").text
    assert "got USR1" in out and "hi\n" in out
    api.post(f"/v1/jobs/{job['id']}/cancel")
    assert api.wait_final(job["id"])["state"] == "CANCELLED"
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["events"]
    assert [e["to_state"] for e in events] == [
        "PENDING", "RUNNING", "SUSPENDED", "RUNNING", "CANCELLED"]
    assert [e["reason"] for e in events[2:4]] == ["suspended by admin", "resumed by admin"]


def test_requeue_runs_again(api: Api) -> None:
    job = api.submit(command="echo run $SLURM_JOB_ID")
    api.wait_final(job["id"])
    requeued = api.post(f"/v1/jobs/{job['id']}/requeue").json()
    assert (requeued["state"], requeued["requeue_count"]) == ("PENDING", 1)
    done = api.wait_final(job["id"])
    assert done["state"] == "COMPLETED" and done["requeue_count"] == 1
    out = api.get(f"/v1/jobs/{job['id']}/stdout").text
    assert out == f"run {job['id']}\nrun {job['id']}\n"


def test_requeue_a_running_job_stops_the_old_run(api: Api, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    job = api.submit(command=f"if [ -e {flag} ]; then echo second; exit 0; fi; "
                             f"touch {flag}; sleep 60")
    wait_file(flag)
    api.post(f"/v1/jobs/{job['id']}/requeue")
    done = api.wait_final(job["id"])
    assert (done["state"], done["requeue_count"]) == ("COMPLETED", 1)
    assert "second" in api.get(f"/v1/jobs/{job['id']}/stdout").text


def test_requeue_of_a_pending_job_conflicts(api: Api) -> None:
    job = api.submit(command="true", hold=True)
    answer = api.post(f"/v1/jobs/{job['id']}/requeue")
    assert answer.status_code == 409
    assert answer.json()["details"]["state"] == "PENDING"


def test_a_job_submitted_with_no_requeue_is_not_requeued(api: Api) -> None:
    # As `sbatch --no-requeue`, then `scontrol requeue`: "presently disabled".
    job = api.submit(script="#!/bin/bash\n#SBATCH --no-requeue\ntrue\n")
    api.wait_final(job["id"])
    answer = api.post(f"/v1/jobs/{job['id']}/requeue")
    assert answer.status_code == 409
    assert "--no-requeue" in answer.json()["message"]
    assert api.get(f"/v1/jobs/{job['id']}").json()["requeue_count"] == 0


def test_modify_pending_and_running(api: Api, tmp_path: Path) -> None:
    job = api.submit(command="true", hold=True)
    changed = api.client.patch(f"/v1/jobs/{job['id']}", headers=api.headers,
                               json={"name": "renamed", "time_limit": "5:00", "tags": ["x"]})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["time_limit"],
            changed.json()["tags"]) == ("renamed", 300, ["x"])
    bad = api.client.patch(f"/v1/jobs/{job['id']}", headers=api.headers,
                           json={"partition": "nope"})
    assert bad.status_code == 422
    flag = tmp_path / "flag"
    running = api.submit(command=f"touch {flag}; sleep 60")
    wait_file(flag)
    refused = api.client.patch(f"/v1/jobs/{running['id']}", headers=api.headers,
                               json={"ntasks": 2})
    assert refused.status_code == 409
    limited = api.client.patch(f"/v1/jobs/{running['id']}", headers=api.headers,
                               json={"time_limit": 1})
    assert limited.json()["time_limit"] == 1
    assert api.wait_final(running["id"])["state"] == "TIMEOUT"


def test_a_suspend_right_after_the_start_sticks(api: Api) -> None:
    """RUNNING is written when the job is claimed; the launch's own report comes
    later. A suspend in between must neither be refused nor be undone by it."""
    admin = Principal("admin", is_admin=True)
    for _ in range(10):
        job = api.submit(command="while true; do sleep 0.05; done")
        running = api.get(f"/v1/jobs/{job['id']}/wait",
                          params={"state": "RUNNING", "timeout": 20}).json()
        assert running["state"] == "RUNNING"
        answer = api.post(f"/v1/jobs/{job['id']}/suspend")
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 20
        # The launch's report sets the native id: once it is in, look again.
        while api.gateway.jobs.get(job["id"], admin).native_id is None:
            assert time.monotonic() < deadline, "the launch was never reported"
            time.sleep(0.01)
        assert api.get(f"/v1/jobs/{job['id']}").json()["state"] == "SUSPENDED"
        assert api.post(f"/v1/jobs/{job['id']}/resume").status_code == 200
        assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
        assert api.wait_final(job["id"])["state"] == "CANCELLED"
