"""GET /v1/jobs writes its pages itself (api/job_pages.py): byte for byte what
JobList of JobOut made of the same jobs, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api_client import Api
from sqlalchemy import update
from test_registry_api import push, record

from jobgate.api.schemas import BatchOut, JobList, JobOut
from jobgate.domain.states import JobState
from jobgate.service.auth import Principal
from jobgate.store.jobs import JOBS, JobFilter


def as_joblist(api: Api, params: dict[str, Any], user: Principal) -> bytes:
    """The page as the route made it before: records, JobOut, pydantic's JSON."""
    states = params.get("state", [])
    filters = JobFilter(states=tuple(JobState(s) for s in
                                     (states if isinstance(states, list) else [states])),
                        tag=params.get("tag"), user_name=params.get("user"),
                        partition=params.get("partition"))
    jobs, cursor = api.gateway.jobs.list_jobs(filters, user, limit=params.get("limit", 100),
                                              cursor=params.get("cursor"))
    return JobList(jobs=[JobOut.of(job) for job in jobs],
                   next_cursor=cursor).model_dump_json().encode()


def set_columns(api: Api, job_id: int, **values: Any) -> None:
    with api.gateway.sessions.begin() as session:
        session.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))


def test_pages_are_the_bytes_joblist_made(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    first = api.submit(command="true", hold=True, name='résumé ✓ "q"\n', comment="a\tb",
                       tags=["b", "a", "c"])
    api.submit(command="true", hold=True, dependencies=f"afterok:{first['id']}", tags=["a"],
               qos="high")
    api.submit(command="true", hold=True, array="0-2")
    own = api.post("/v1/jobs", headers=ana, json={"command": "true", "hold": True, "tags": ["a"]})
    assert own.status_code == 201, own.text
    gone = api.submit(command="true", hold=True, tags=["a"])
    api.post(f"/v1/jobs/{gone['id']}/cancel")
    assert api.client.delete(f"/v1/jobs/{gone['id']}", headers=api.headers).status_code == 204
    push(api, record(1, state="COMPLETED", start="2026-01-02T03:05:05.123456Z",
                     end="2026-01-02T03:15:05Z", nodes="n[1-2]", user="bob",
                     additional_data={"k": [1, 2.5, "é", None, {"deep": True}]}),
         record(2, state="PENDING", start=None, user="ana"))
    set_columns(api, first["id"],  # as the engine writes them
                stats={"cpu_user": 1, "cpu_system": 2, "max_rss_kib": 2048.0},
                allocation={"node": "n1", "cpus": [0, 1], "memory": 512})
    admin = api.gateway.auth.authenticate(api.token)
    anas = api.gateway.auth.authenticate("ana-token")

    queries: list[dict[str, Any]] = [
        {}, {"tag": "a"}, {"state": "PENDING"}, {"state": ["PENDING", "COMPLETED"]},
        {"user": "ana"}, {"partition": "normal"}, {"limit": 2}, {"tag": "none"}]
    for user, headers in ((admin, api.headers), (anas, ana)):
        for params in queries:
            answer = api.get("/v1/jobs", params=params, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/json"
            assert answer.content == as_joblist(api, params, user), params
        # Walked with cursors, page by page.
        params = {"limit": 2}
        while True:
            answer = api.get("/v1/jobs", params=params, headers=headers)
            assert answer.content == as_joblist(api, params, user), params
            if answer.json()["next_cursor"] is None:
                break
            params = params | {"cursor": answer.json()["next_cursor"]}
    assert len(api.get("/v1/jobs").json()["jobs"]) == 8
    assert len(api.get("/v1/jobs", headers=ana).json()["jobs"]) == 2


def test_what_orjson_cannot_write_is_written_as_pydantic_would(api: Api) -> None:
    # An integer past 64 bits (the registry refuses them; a store written otherwise).
    job = api.submit(command="true", hold=True)
    set_columns(api, job["id"], allocation={"big": 2**70})
    admin = api.gateway.auth.authenticate(api.token)
    answer = api.get("/v1/jobs")
    assert answer.status_code == 200, answer.text
    assert answer.content == as_joblist(api, {}, admin)
    assert answer.json()["jobs"][0]["allocation"] == {"big": 2**70}


def test_a_running_jobs_run_time_is_counted_to_now(api: Api) -> None:
    push(api, record(1, state="RUNNING", start="2026-01-02T03:05:05Z"))
    start = datetime(2026, 1, 2, 3, 5, 5, tzinfo=UTC)
    before = int((datetime.now(UTC) - start).total_seconds())
    job = api.get("/v1/jobs").json()["jobs"][0]
    after = int((datetime.now(UTC) - start).total_seconds())
    assert before <= job["run_time"] <= after
    assert job["elapsed_cpu_time"] == job["run_time"] * job["cpus"]
    assert job["final"] is False


def test_a_batch_answer_is_the_bytes_batchout_made(api: Api) -> None:
    specs = [
        {"command": "true", "hold": True, "name": 'résumé ✓ "q"\n', "tags": ["b", "a"],
         "comment": "a\tb", "cpus_per_task": 2, "memory": 64, "time_limit": 60},
        {"script": "#!/bin/bash\ntrue\n", "hold": True, "priority": 5},
        {"command": "true", "hold": True, "array": "0-2"},
        {"command": "true", "hold": True, "dependencies": "afterany:1", "tags": ["x"],
         "qos": "high"},
    ]
    answer = api.post("/v1/jobs:batch", json={"jobs": specs})
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"] == "application/json"
    admin = api.gateway.auth.authenticate(api.token)
    records = [api.gateway.jobs.get(job["id"], admin) for job in answer.json()["jobs"]]
    assert len(records) == 4 and records[3].spec.dependencies == "afterany:1"
    # run_time is counted to now: none of these jobs has started, so it is 0 in both.
    assert answer.content == BatchOut(jobs=[JobOut.of(r) for r in records]).model_dump_json(
    ).encode()
