"""The /v1 job surface over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
from pathlib import Path

from api_client import Api

from jobgate.config import Settings

SBATCH_SCRIPT = "#!/bin/bash\n#SBATCH -J sbname -t 0:01:00 --mem=100M -c 2\necho hi\n"


def test_submit_runs_and_stdout_is_served(api: Api) -> None:
    job = api.submit(script="#!/bin/bash\necho hi")
    assert job["state"] == "PENDING" and job["user_name"] == "admin"
    done = api.wait_final(job["id"])
    assert done["state"] == "COMPLETED" and done["exit_code"] == 0
    out = api.get(f"/v1/jobs/{job['id']}/stdout")
    assert out.status_code == 200
    assert out.text == "hi\n"
    assert out.headers["X-Next-Offset"] == "3"
    assert api.get(f"/v1/jobs/{job['id']}/stdout", params={"offset": 1}).text == "i\n"
    assert api.get(f"/v1/jobs/{job['id']}/stdout", params={"offset": 99}).text == ""


def test_stderr_and_failure(api: Api) -> None:
    job = api.submit(command="echo bad >&2; exit 2")
    done = api.wait_final(job["id"])
    assert (done["state"], done["exit_code"]) == ("FAILED", 2)
    assert api.get(f"/v1/jobs/{job['id']}/stderr").text == "bad\n"


def test_errors_go_where_output_goes_unless_error_is_given(api: Api) -> None:
    # sbatch: `#SBATCH -o run-%j.log` alone takes stderr too.
    job = api.submit(script="#!/bin/bash\n#SBATCH -o run-%j.log\necho out; echo err >&2\n")
    assert job["standard_error"] == job["standard_output"]
    assert job["standard_output"].endswith(f"/run-{job['id']}.log")
    api.wait_final(job["id"])
    assert api.get(f"/v1/jobs/{job['id']}/stdout").text == "out\nerr\n"
    apart = api.submit(command="true", stdout="o-%j", stderr="e-%j")
    assert (apart["standard_output"].endswith(f"/o-{apart['id']}"),
            apart["standard_error"].endswith(f"/e-{apart['id']}")) == (True, True)
    default = api.submit(command="true")  # neither: jobgate's files, kept apart
    assert default["standard_error"].endswith(f"/jobgate-{default['id']}.err")


def test_sbatch_directives_fill_and_explicit_fields_win(api: Api) -> None:
    job = api.submit(script=SBATCH_SCRIPT)
    assert (job["name"], job["time_limit"], job["memory"], job["cpus_per_task"]) == (
        "sbname", 60, 100, 2
    )
    assert api.submit(script=SBATCH_SCRIPT, name="other")["name"] == "other"


def test_events_record_every_change(api: Api) -> None:
    job = api.submit(command="true")
    api.wait_final(job["id"])
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["events"]
    assert [(e["from_state"], e["to_state"]) for e in events] == [
        (None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "COMPLETED"),
    ]
    later = api.get(f"/v1/jobs/{job['id']}/events", params={"after": events[0]["seq"]})
    assert len(later.json()["events"]) == 2


def test_cancel_running_then_conflict(api: Api, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    job = api.submit(command=f"touch {flag}; sleep 60")
    while not flag.exists():
        pass
    answer = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert answer.status_code == 200
    assert api.wait_final(job["id"])["state"] == "CANCELLED"
    again = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"


def test_bad_time_limit_is_422_naming_the_field(api: Api) -> None:
    answer = api.post("/v1/jobs", json={"script": "echo", "time_limit": "1:xx"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "invalid"
    assert "time_limit" in body["message"]
    assert body["details"][0]["field"] == "time_limit"


def test_bad_sbatch_directive_is_422(api: Api) -> None:
    answer = api.post("/v1/jobs", json={"script": "#!/bin/bash\n#SBATCH -t 1:xx\ntrue"})
    assert answer.status_code == 422
    assert "time_limit" in answer.json()["message"]


def test_unknown_partition_and_cluster_are_422(api: Api) -> None:
    for field, value in (("partition", "nope"), ("cluster", "elsewhere")):
        answer = api.post("/v1/jobs", json={"command": "true", field: value})
        assert answer.status_code == 422
        assert answer.json()["details"][0]["field"] == field
        assert "normal" in answer.json()["message"] or "local" in answer.json()["message"]


def test_what_the_cluster_cannot_give_is_422(api: Api) -> None:
    for field, value in (("nodes", 2), ("cpus_per_task", 4096), ("memory", "64T"),
                         ("gpus", 64)):
        answer = api.post("/v1/jobs", json={"command": "true", field: value})
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["details"][0]["field"] == field
        if field == "memory":  # the amount asked, in the unit the limit is given in
            assert "(got '67108864 MiB')" in answer.json()["message"]


def test_slurms_own_directives_are_422_on_the_local_cluster(api: Api) -> None:
    script = "#!/bin/bash\n#SBATCH --exclusive\n#SBATCH --constraint=ib\ntrue\n"
    answer = api.post("/v1/jobs", json={"script": script})
    assert answer.status_code == 422
    assert answer.json()["details"]["fields"] == ["constraint", "exclusive"]
    assert "cluster 'local' does not support constraint, exclusive" in answer.json()["message"]


def test_wrong_body_types_are_422_in_our_format(api: Api) -> None:
    answer = api.post("/v1/jobs", json={"command": "true", "ntasks": "lots"})
    assert answer.status_code == 422
    assert answer.json()["details"][0]["field"] == "ntasks"
    assert api.post("/v1/jobs", content=b"not json",
                    headers={**api.headers, "Content-Type": "application/json"}
                    ).status_code == 422


def test_auth_is_required_everywhere(api: Api) -> None:
    for method, path in (("post", "/v1/jobs"), ("get", "/v1/jobs"), ("get", "/v1/jobs/1"),
                         ("post", "/v1/jobs/1/cancel"), ("get", "/v1/jobs/1/events"),
                         ("get", "/v1/jobs/1/stdout"), ("get", "/v1/jobs/1/stderr")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            answer = getattr(api.client, method)(path, headers=headers)
            assert answer.status_code == 401, (method, path, headers)
            assert answer.json()["error"] == "unauthorized"
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_unknown_job_is_404(api: Api) -> None:
    for path in ("/v1/jobs/999", "/v1/jobs/999/events", "/v1/jobs/999/stdout"):
        answer = api.get(path)
        assert answer.status_code == 404
        assert answer.json()["error"] == "not_found"
    assert api.post("/v1/jobs/999/cancel").status_code == 404


def test_list_filters_and_cursor(api: Api) -> None:
    ids = [api.submit(command="true", tags=["even" if i % 2 == 0 else "odd"])["id"]
           for i in range(5)]
    everything = api.get("/v1/jobs").json()
    assert [j["id"] for j in everything["jobs"]] == ids[::-1]
    assert everything["next_cursor"] is None
    assert [j["id"] for j in api.get("/v1/jobs", params={"tag": "odd"}).json()["jobs"]] == [
        ids[3], ids[1]
    ]
    seen, cursor = [], None
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    for state in ("COMPLETED", "PENDING"):
        listed = api.get("/v1/jobs", params={"state": state}).json()["jobs"]
        assert all(j["state"] == state for j in listed)
    assert api.get("/v1/jobs", params={"state": "DONE"}).status_code == 422
    assert api.get("/v1/jobs", params={"cursor": "garbage"}).status_code == 422
    assert api.get("/v1/jobs", params={"limit": 0}).status_code == 422


def test_list_the_tasks_of_one_array(api: Api) -> None:
    first = api.submit(command="true", array="0-4", hold=True)["array_job_id"]
    other = api.submit(command="true", array="0-1", hold=True)["array_job_id"]
    api.submit(command="true", hold=True)

    def listed(**params: object) -> list[tuple[int, int]]:
        jobs = api.get("/v1/jobs", params=params).json()["jobs"]
        return [(j["array_job_id"], j["array_task_id"]) for j in jobs]

    assert listed(array=first) == [(first, task) for task in (4, 3, 2, 1, 0)]
    assert listed(array=other, state="PENDING") == [(other, 1), (other, 0)]
    seen, cursor = [], None
    while True:  # page by page, the filter holds
        page = api.get("/v1/jobs", params={"array": first, "limit": 2,
                                           **({"cursor": cursor} if cursor else {})}).json()
        seen += [j["array_task_id"] for j in page["jobs"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [4, 3, 2, 1, 0]
    assert listed(array=other + 100) == []
    assert api.get("/v1/jobs", params={"array": 0}).status_code == 422


def test_users_see_only_their_own_jobs(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    theirs = api.submit(command="true")
    mine = api.post("/v1/jobs", json={"command": "true"}, headers=ana).json()
    assert mine["user_name"] == "ana"
    assert [j["id"] for j in api.get("/v1/jobs", headers=ana).json()["jobs"]] == [mine["id"]]
    assert api.get(f"/v1/jobs/{theirs['id']}", headers=ana).status_code == 404
    assert api.post(f"/v1/jobs/{theirs['id']}/cancel", headers=ana).status_code == 404
    assert api.get(f"/v1/jobs/{theirs['id']}/stdout", headers=ana).status_code == 404
    assert api.get("/v1/jobs", params={"user": "admin"}, headers=ana).json()["jobs"] == []
    admin_view = api.get("/v1/jobs", params={"user": "ana"}).json()["jobs"]
    assert [j["id"] for j in admin_view] == [mine["id"]]


def test_admin_token_file_is_private(api: Api, settings: Settings) -> None:
    mode = stat.S_IMODE(settings.admin_token_path.stat().st_mode)
    assert mode == 0o600
    assert len(api.token) >= 32


def test_openapi_is_served(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert "/v1/jobs" in spec["paths"]
    assert api.client.get("/docs").status_code == 200


def test_oversized_bodies_are_refused(api: Api) -> None:
    huge = "x" * (9 * 1024 * 1024)
    answer = api.post("/v1/jobs", json={"script": huge})
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    big_script = "#!/bin/bash\n" + "#" * (1024 * 1024 + 1)
    answer = api.post("/v1/jobs", json={"script": big_script})
    assert answer.status_code == 422
    assert answer.json()["details"][0]["field"] == "script"
    # A command is one argument of bash -c, which the kernel caps at 128 KiB.
    answer = api.post("/v1/jobs", json={"command": "true " + " " * (128 * 1024)})
    assert answer.status_code == 422
    assert answer.json()["details"][0]["field"] == "command"
    assert "send it as a script" in answer.json()["message"]


def test_oversized_streamed_bodies_are_refused(api: Api) -> None:
    chunks = (b"x" * (1024 * 1024) for _ in range(9))  # no Content-Length: counted
    answer = api.client.post("/v1/jobs", content=chunks,
                             headers={**api.headers, "Content-Type": "application/json"})
    assert answer.status_code == 413


def test_a_wrong_path_is_not_a_missing_job(api: Api) -> None:
    answer = api.get("/v2/jobs")
    assert answer.status_code == 404
    assert answer.json()["error"] == "no_route"
    assert "/v2/jobs" in answer.json()["message"]


def test_start_time_once_reported_does_not_change(api: Api) -> None:
    job = api.submit(command="true")
    done = api.wait_final(job["id"])
    running = [e for e in api.get(f"/v1/jobs/{job['id']}/events").json()["events"]
               if e["to_state"] == "RUNNING"]
    assert done["start_time"] == running[0]["at"]


def test_submissions_past_the_rate_limit_are_429(tmp_path: Path, db_url: str) -> None:
    from fastapi.testclient import TestClient

    from jobgate.api.app import create_app

    settings = Settings.load(home=tmp_path / "home", database_url=db_url, submit_rate=0.5,
                             submit_burst=2, run_engine=False)
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {settings.admin_token_path.read_text().strip()}"}
        codes = [client.post("/v1/jobs", json={"command": "true"}, headers=headers)
                 for _ in range(3)]
    assert [c.status_code for c in codes] == [201, 201, 429]
    assert codes[2].headers["Retry-After"] == "2"
    assert codes[2].json()["error"] == "rate_limited"


def test_batch_is_all_or_nothing(api: Api) -> None:
    answer = api.post("/v1/jobs:batch", json={"jobs": [
        {"command": "echo 1", "tags": ["batch"]},
        {"script": "#!/bin/bash\n#SBATCH -J second\necho 2", "tags": ["batch"]},
        {"command": "true", "array": "0-2", "tags": ["batch"]},
    ]})
    assert answer.status_code == 201, answer.text
    jobs = answer.json()["jobs"]
    assert [j["name"] for j in jobs] == ["wrap", "second", "wrap"]
    assert len(api.get("/v1/jobs", params={"tag": "batch"}).json()["jobs"]) == 5  # 2 + 3 tasks
    assert api.wait_final(jobs[1]["id"])["state"] == "COMPLETED"

    refused = api.post("/v1/jobs:batch", json={"jobs": [
        {"command": "true", "tags": ["nope"]},
        {"command": "true", "time_limit": "1:xx", "tags": ["nope"]},
    ]})
    assert refused.status_code == 422
    assert refused.json()["details"][0]["field"] == "jobs[1].time_limit"
    assert api.get("/v1/jobs", params={"tag": "nope"}).json()["jobs"] == []
    assert api.post("/v1/jobs:batch", json={"jobs": []}).status_code == 422
    too_many = {"jobs": [{"command": "true"}] * 1001}
    assert api.post("/v1/jobs:batch", json=too_many).status_code == 422
