"""Push over HTTP: long-poll, job waits (TestClient) and SSE (a real server)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
from api_client import Api

from server_process import LiveServer


def test_long_poll_answers_when_an_event_arrives(api: Api) -> None:
    last = max((e["seq"] for e in api.get("/v1/events").json()["events"]), default=0)
    answers: list[dict[str, Any]] = []
    started = threading.Event()

    def poll() -> None:
        started.set()
        answers.append(api.get("/v1/events", params={"after": last, "wait": 20}).json())

    waiter = threading.Thread(target=poll)
    waiter.start()
    started.wait()
    time.sleep(0.3)
    assert not answers  # still waiting: nothing new yet
    job = api.submit(command="true")
    waiter.join(timeout=20)
    assert answers, "the long-poll did not answer"
    events = answers[0]["events"]
    assert events[0]["job_id"] == job["id"] and events[0]["to_state"] == "PENDING"


def test_long_poll_times_out_empty_and_filters(api: Api) -> None:
    job = api.submit(command="exit 3")
    api.wait_final(job["id"])
    everything = api.get("/v1/events", params={"job_id": job["id"]}).json()["events"]
    assert [e["to_state"] for e in everything] == ["PENDING", "RUNNING", "FAILED"]
    failed = api.get("/v1/events", params={"state": "FAILED"}).json()["events"]
    assert [e["job_id"] for e in failed] == [job["id"]]
    empty = api.get("/v1/events", params={"after": everything[-1]["seq"], "wait": 0.3})
    assert empty.json() == {"events": []}
    assert api.get("/v1/events", params={"wait": 999}).status_code == 422


def test_events_of_other_users_stay_hidden(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    api.submit(command="true")
    mine = api.post("/v1/jobs", json={"command": "true"}, headers=ana).json()
    seen = api.get("/v1/events", headers=ana).json()["events"]
    assert {e["job_id"] for e in seen} == {mine["id"]}
    assert api.get("/v1/events", params={"user": "admin"}, headers=ana).json()["events"] == []


def test_wait_for_a_state(api: Api, tmp_path: Any) -> None:
    flag = tmp_path / "go"
    job = api.submit(command=f"while [ ! -e {flag} ]; do sleep 0.05; done")
    running = api.get(f"/v1/jobs/{job['id']}/wait", params={"state": "RUNNING", "timeout": 20})
    assert running.json()["state"] == "RUNNING"
    still = api.get(f"/v1/jobs/{job['id']}/wait", params={"timeout": 0.3}).json()
    assert still["state"] == "RUNNING"  # timed out: the job as it is
    flag.touch()
    done = api.get(f"/v1/jobs/{job['id']}/wait", params={"timeout": 20}).json()
    assert done["state"] == "COMPLETED"
    assert api.get("/v1/jobs/99999/wait").status_code == 404


def read_sse(url: str, token: str, enough: Any, headers: dict[str, str] | None = None,
             params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Read the stream over a real HTTP connection until `enough(events)`, then hang up."""
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{url}/v1/events/stream", params=params, timeout=60,
                      headers={"Authorization": f"Bearer {token}", **(headers or {})}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if enough(events):
                    break
    return events


def test_sse_delivers_every_event_of_1000_jobs_in_order_across_a_reconnect(
    server: LiveServer,
) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        start = max((e["seq"] for e in client.get("/v1/events").json()["events"]), default=0)
    ids: list[int] = []

    def submit() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            answer = client.post("/v1/jobs:batch", json={"jobs": [
                {"command": "true", "tags": ["sse"]} for _ in range(1000)]})
            assert answer.status_code == 201, answer.text
            ids.extend(job["id"] for job in answer.json()["jobs"])

    def all_ended(got: list[dict[str, Any]]) -> bool:
        wanted = set(ids)
        return bool(wanted) and sum(
            e["job_id"] in wanted and e["to_state"] == "COMPLETED" for e in got) == len(wanted)

    # The stream is read while the jobs run; it is cut half-way and resumed.
    submitter = threading.Thread(target=submit)
    submitter.start()
    first = read_sse(server.url, server.token, lambda got: len(got) >= 1500,
                     params={"after": start})
    submitter.join()
    resumed = read_sse(server.url, server.token, lambda got: all_ended(first + got),
                       headers={"Last-Event-ID": str(first[-1]["seq"])})
    wanted = [e for e in client_events(server, start) if e["job_id"] in set(ids)]
    assert len(wanted) == 3 * 1000
    streamed = [e for e in first + resumed if e["job_id"] in set(ids)]
    assert [e["seq"] for e in streamed] == [e["seq"] for e in wanted]  # none lost, none twice
    states: dict[int, list[str]] = {}
    for event in streamed:
        states.setdefault(event["job_id"], []).append(event["to_state"])
    assert all(s == ["PENDING", "RUNNING", "COMPLETED"] for s in states.values())


def client_events(server: LiveServer, after: int) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.token}"}
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        while True:
            page = client.get("/v1/events", params={"after": after, "limit": 1000}).json()
            if not page["events"]:
                return events
            events += page["events"]
            after = page["events"][-1]["seq"]


def test_follow_streams_output_until_the_job_ends(server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        job = client.post("/v1/jobs", json={
            "command": "for i in 1 2 3; do echo line $i; sleep 0.3; done"}).json()
        received = []
        with client.stream("GET", f"/v1/jobs/{job['id']}/stdout",
                           params={"follow": "true"}) as answer:
            for chunk in answer.iter_text():
                received.append(chunk)
        assert "".join(received) == "line 1\nline 2\nline 3\n"
        assert len(received) >= 2  # it came as it was written, not all at the end
        assert client.get(f"/v1/jobs/{job['id']}").json()["final"]
        assert client.get("/v1/jobs/99999/stdout", params={"follow": "true"}).status_code == 404
