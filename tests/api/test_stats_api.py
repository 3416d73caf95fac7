"""GET /v1/stats: accounting over jobs of known shapes, exact on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_client import Api

from jobgate.domain.states import JobState
from jobgate.store.jobs import JobRepository

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def put_job(api: Api, *, user: str, state: JobState, submit: datetime,
            start: datetime | None = None, end: datetime | None = None, account: str | None,
            cluster: str = "hpc1", partition: str = "batch", ntasks: int = 1,
            cpus_per_task: int = 1, memory: int | None = None,
            memory_per_cpu: int | None = None) -> int:
    """A ledger row with exactly these times, as the registry or the engine writes them.
    (Clusters other than `local` have no backend here: the engine leaves them be.)"""
    values: dict[str, Any] = {
        "name": "shape", "state": state.value, "state_reason": None, "held": False,
        "user_name": user, "cluster": cluster, "partition": partition, "account": account,
        "num_nodes": 1, "ntasks": ntasks, "cpus_per_task": cpus_per_task, "memory": memory,
        "memory_per_cpu": memory_per_cpu, "gpus": 0, "time_limit": None, "priority": 0,
        "comment": None, "working_directory": "/tmp", "standard_output": "/tmp/o",
        "standard_error": "/tmp/e", "submit_time": submit, "start_time": start,
        "end_time": end, "updated_at": end or start or submit, "exit_code": None,
        "exit_code_signal": None, "requeue_count": 0, "native_id": None,
        "spec": {"command": "true"}, "array_job_id": None, "array_task_id": None,
        "allocation": None, "stats": None,
    }
    with api.gateway.sessions.begin() as session:
        return JobRepository(session).insert(values, [], submit, "test")


# Submit times of the shapes below.
J4_START = T0 + 3 * 3600 * S + 10 * S
J5_SUBMIT = datetime(2024, 3, 2, 23, 59, 59, 999000, tzinfo=UTC)


@pytest.fixture
def shapes(api: Api) -> None:
    # j1: 2 tasks x 4 CPUs, queued 60 s, ran 3600 s.
    put_job(api, user="alice", state=JobState.COMPLETED, account="proj-a", submit=T0,
            start=T0 + 60 * S, end=T0 + 3660 * S, ntasks=2, cpus_per_task=4, memory=1000)
    # j2: fractions of seconds: queued 30.5 s -> 30, ran 100.9 s -> 100; 512 MiB x 2 CPUs.
    j2_submit = datetime(2024, 3, 2, 0, 30, tzinfo=UTC)
    put_job(api, user="alice", state=JobState.FAILED, account="proj-a", submit=j2_submit,
            start=j2_submit + 30.5 * S, end=j2_submit + 131.4 * S, partition="debug",
            cpus_per_task=2, memory_per_cpu=512)
    # j3: cancelled while pending, after 45 s; asked no memory.
    put_job(api, user="bob", state=JobState.CANCELLED, account=None,
            submit=T0 + 2 * 3600 * S, end=T0 + 2 * 3600 * S + 45 * S)
    # j4: running since J4_START, queued 10 s.
    put_job(api, user="bob", state=JobState.RUNNING, account="proj-b", cluster="hpc2",
            submit=T0 + 3 * 3600 * S, start=J4_START, ntasks=4, memory=2048)
    # j5: waiting since the last millisecond of 2 March.
    put_job(api, user="carol", state=JobState.PENDING, account="proj-b", cluster="hpc2",
            partition="gpu", submit=J5_SUBMIT, cpus_per_task=8)
    # j6: a pushed record that ends before it starts: its run counts 0, its queue 5 s.
    j6_submit = datetime(2024, 3, 3, tzinfo=UTC)
    put_job(api, user="dave", state=JobState.COMPLETED, account="proj-a", submit=j6_submit,
            start=j6_submit + 5 * S, end=j6_submit, memory=100)


def seconds(earlier: datetime, later: datetime) -> int:
    return int((later - earlier).total_seconds())


def usage(key: str | None, count: int, cpus: int, memory: int, ntasks: int,
          elapsed_cpu_time: int, wall_time: int, queue_time: int) -> dict[str, Any]:
    return {"key": key, "count": count, "cpus": cpus, "memory": memory, "ntasks": ntasks,
            "elapsed_cpu_time": elapsed_cpu_time, "wall_time": wall_time,
            "queue_time": queue_time}


def stats(api: Api, headers: dict[str, str] | None = None, **params: str) -> dict[str, Any]:
    answer = api.get("/v1/stats", params=params, headers=headers or api.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def now_of(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["now"])


@pytest.mark.usefixtures("shapes")
def test_by_user_sums_each_jobs_figures(api: Api) -> None:
    body = stats(api, group_by="user")
    now = now_of(body)
    j4_run = seconds(J4_START, now)
    assert body["group_by"] == "user"
    assert body["groups"] == [
        usage("alice", 2, 10, 1000 + 1024, 3, 2 * 4 * 3600 + 2 * 100, 3600 + 100, 60 + 30),
        usage("bob", 2, 1 + 4, 2048, 5, 4 * j4_run, j4_run, 45 + 10),
        usage("carol", 1, 8, 0, 1, 0, 0, seconds(J5_SUBMIT, now)),
        usage("dave", 1, 1, 100, 1, 0, 0, 5),
    ]
    assert body["total"] == usage(None, 6, 24, 4172, 10, 29000 + 4 * j4_run, 3700 + j4_run,
                                  90 + 55 + seconds(J5_SUBMIT, now) + 5)


@pytest.mark.usefixtures("shapes")
def test_by_project_is_the_account_and_no_account_comes_last(api: Api) -> None:
    body = stats(api, group_by="project")
    now = now_of(body)
    j4_run = seconds(J4_START, now)
    assert body["groups"] == [
        usage("proj-a", 3, 11, 2124, 4, 29000, 3700, 95),
        usage("proj-b", 2, 12, 2048, 5, 4 * j4_run, j4_run, 10 + seconds(J5_SUBMIT, now)),
        usage(None, 1, 1, 0, 1, 0, 0, 45),
    ]


@pytest.mark.usefixtures("shapes")
def test_by_cluster_partition_and_state(api: Api) -> None:
    assert [(g["key"], g["count"], g["cpus"]) for g in stats(api, group_by="cluster")["groups"]
            ] == [("hpc1", 4, 12), ("hpc2", 2, 12)]
    assert [(g["key"], g["count"], g["wall_time"])
            for g in stats(api, group_by="partition")["groups"]
            if g["key"] != "batch"] == [("debug", 1, 100), ("gpu", 1, 0)]
    by_state = {g["key"]: g for g in stats(api, group_by="state")["groups"]}
    assert sorted(by_state) == ["CANCELLED", "COMPLETED", "FAILED", "PENDING", "RUNNING"]
    assert by_state["COMPLETED"] == usage("COMPLETED", 2, 9, 1100, 3, 28800, 3600, 65)


@pytest.mark.usefixtures("shapes")
def test_by_utc_day_of_submit_time(api: Api) -> None:
    body = stats(api, group_by="day")
    assert [(g["key"], g["count"]) for g in body["groups"]] == [
        ("2024-03-01", 3), ("2024-03-02", 2), ("2024-03-03", 1)]


@pytest.mark.usefixtures("shapes")
def test_since_is_inclusive_until_exclusive(api: Api) -> None:
    body = stats(api, group_by="state", since="2024-03-01T11:00:00Z",
                 until="2024-03-02T23:59:59.999Z")
    assert [g["key"] for g in body["groups"]] == ["CANCELLED", "FAILED", "RUNNING"]
    assert body["since"] == "2024-03-01T11:00:00Z"
    # Another zone is the same instant; no zone is UTC.
    body = stats(api, group_by="user", since="2024-03-03T01:59:59.999+02:00")
    assert [(g["key"], g["count"]) for g in body["groups"]] == [("carol", 1), ("dave", 1)]
    body = stats(api, group_by="user", since="2024-03-03T00:00:00")
    assert [(g["key"], g["count"]) for g in body["groups"]] == [("dave", 1)]
    assert stats(api, group_by="user", since="2030-01-01T00:00:00Z")["groups"] == []
    assert stats(api, group_by="user", since="2030-01-01T00:00:00Z")["total"] == usage(
        None, 0, 0, 0, 0, 0, 0, 0)


@pytest.mark.usefixtures("shapes")
def test_a_user_sees_only_their_own_jobs(api: Api) -> None:
    alice = api.add_user("alice", "alice-token")
    body = stats(api, alice, group_by="user")
    assert [g["key"] for g in body["groups"]] == ["alice"]
    body = stats(api, alice, group_by="cluster")
    assert body["total"] == usage(None, 2, 10, 2024, 3, 29000, 3700, 90)
    nobody = api.add_user("erin", "erin-token")
    assert stats(api, nobody, group_by="user")["groups"] == []


def test_jobs_run_here_count_as_the_api_shows_them(api: Api) -> None:
    job = api.wait_final(api.submit(command="sleep 1.2", ntasks=1, cpus_per_task=2)["id"])
    assert job["state"] == "COMPLETED"
    (group,) = stats(api, group_by="cluster")["groups"]
    assert group["key"] == "local"
    assert (group["count"], group["cpus"], group["wall_time"], group["elapsed_cpu_time"]) == (
        1, 2, job["run_time"], job["elapsed_cpu_time"])
    assert group["queue_time"] == seconds(datetime.fromisoformat(job["submit_time"]),
                                          datetime.fromisoformat(job["start_time"]))
    assert job["run_time"] >= 1


@pytest.mark.parametrize("params, field, says", [
    ({"group_by": "account"}, "group_by", "'project', 'user', 'cluster', 'partition', "
                                          "'state' or 'day'"),
    ({}, "group_by", "Field required"),
    ({"group_by": "user", "since": "yesterday"}, "since", "must be an ISO 8601 time"),
    ({"group_by": "user", "until": "2024-13-01"}, "until", "datetime"),
    ({"group_by": "user", "until": "1709287200"}, "until", "must be an ISO 8601 time"),
    ({"group_by": "user", "since": "2024-03-02T00:00:00Z", "until": "2024-03-01T00:00:00Z"},
     "since", "must not be after until"),
])
def test_bad_queries_are_422_saying_what_to_fix(
    api: Api, params: dict[str, str], field: str, says: str,
) -> None:
    answer = api.get("/v1/stats", params=params)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid"
    assert body["details"][0]["field"] == field
    assert says in body["message"]


def test_needs_a_token(api: Api) -> None:
    answer = api.get("/v1/stats", params={"group_by": "user"}, headers={})
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
