"""Webhooks: a real HTTP receiver gets every event, signed, in order per job,
with retries; deliveries are listed; other users' events never reach it."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from api_client import Api
from fastapi.testclient import TestClient

from jobgate.api.app import create_app
from jobgate.config import Settings
from jobgate.domain.spec import JobSpec
from jobgate.service.auth import Principal

SECRET = "s3cret-of-the-receiver-0123456789"
FAST = {"webhook_backoff": 0.05, "webhook_backoff_max": 0.2}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded

    @property
    def job_id(self) -> int:
        return int(self.data["event"]["job_id"])

    @property
    def seq(self) -> int:
        return int(self.data["event"]["seq"])


@dataclass
class Receiver:
    """An HTTP server in a thread; `answer(body)` picks each request's status."""

    url: str
    answer: Callable[[dict[str, Any]], int]
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.got if 200 <= r.answered < 300]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.got)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec = box[0]
            status = rec.answer(json.loads(body))
            with rec.lock:
                rec.got.append(Received(dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"no" if status >= 300 else b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", lambda _: 200))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def running(settings: Settings, **overrides: Any) -> Iterator[Api]:
    """The app with other settings (a short backoff), started and stopped here."""
    changed = settings.model_copy(update=overrides)
    with TestClient(create_app(changed)) as client:
        yield Api(client, changed.admin_token_path.read_text().strip())


@pytest.fixture
def fast_api(settings: Settings) -> Iterator[Api]:
    with running(settings, **FAST, webhook_max_attempts=4, webhooks_per_user=3) as api:
        yield api


def until(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Wait for `condition` to be truthy (a deadline, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def register(api: Api, url: str, headers: dict[str, str] | None = None,
             **extra: Any) -> dict[str, Any]:
    answer = api.post("/v1/webhooks", json={"url": url, "secret": SECRET, **extra},
                      headers=headers or api.headers)
    assert answer.status_code == 201, answer.text
    hook: dict[str, Any] = answer.json()
    return hook


def seqs_of(api: Api, job_id: int) -> list[int]:
    return [e["seq"] for e in api.get(f"/v1/jobs/{job_id}/events").json()["events"]]


def all_delivered(api: Api, receiver: Receiver, job_ids: list[int]) -> bool:
    """Every event of these (final) jobs was accepted by the receiver."""
    got = {(r.job_id, r.seq) for r in receiver.accepted()}
    return all((job_id, seq) in got for job_id in job_ids for seq in seqs_of(api, job_id))


def assert_in_order_per_job(receiver: Receiver, give_up_after: int | None = None) -> None:
    """No request for an event went out before every earlier event of the same
    job had been accepted (or, with `give_up_after`, refused that many times)."""
    got = receiver.all()
    settled: set[tuple[int, int]] = set()
    tries: dict[tuple[int, int], int] = {}
    for rec in got:
        earlier = {(r.job_id, r.seq) for r in got if r.job_id == rec.job_id and r.seq < rec.seq}
        assert earlier <= settled, f"{rec.job_id}/{rec.seq} went before {earlier - settled}"
        key = (rec.job_id, rec.seq)
        tries[key] = tries.get(key, 0) + 1
        if 200 <= rec.answered < 300 or tries[key] == give_up_after:
            settled.add(key)


def deliveries(api: Api, hook_id: int, **params: Any) -> list[dict[str, Any]]:
    answer = api.get(f"/v1/webhooks/{hook_id}/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["deliveries"]
    return found


def test_every_event_arrives_signed_and_in_order_per_job(api: Api, receiver: Receiver) -> None:
    hook = register(api, receiver.url, description="ci")
    assert hook["secret"] == SECRET and hook["url"] == receiver.url
    jobs = [api.submit(command=f"sleep 0.{i}; exit {i % 2}") for i in range(4)]
    for job in jobs:
        api.wait_final(job["id"])
    ids = [job["id"] for job in jobs]
    until(lambda: all_delivered(api, receiver, ids), what="every event delivered")

    for rec in receiver.all():
        expected = "sha256=" + hmac.new(SECRET.encode(), rec.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(rec.headers["X-Jobgate-Signature"], expected)
        assert rec.headers["Content-Type"] == "application/json"
        assert int(rec.headers["X-Jobgate-Delivery"]) == rec.data["delivery_id"]
        assert rec.headers["X-Jobgate-Event"] == f"job.{rec.data['event']['to_state']}"
        assert rec.data["webhook_id"] == hook["id"]
        assert rec.data["job"]["user_name"] == "admin"
    for job_id in ids:
        events = api.get(f"/v1/jobs/{job_id}/events").json()["events"]
        got = [r.data["event"] for r in receiver.accepted() if r.job_id == job_id]
        assert [e["seq"] for e in got] == [e["seq"] for e in events]  # in order, once each
        assert [e["to_state"] for e in got] == [e["to_state"] for e in events]
        assert got[-1]["to_state"] in ("COMPLETED", "FAILED")
    assert_in_order_per_job(receiver)

    listed = deliveries(api, hook["id"])
    assert len(listed) == len(receiver.all())
    assert [d["event_seq"] for d in listed] == sorted((d["event_seq"] for d in listed),
                                                      reverse=True)
    for item in listed:
        assert item["status"] == "delivered" and item["attempts"] == 1
        assert item["last_status_code"] == 200 and item["last_error"] is None
        assert item["delivered_at"] is not None and item["next_attempt_at"] is None
    shown = api.get(f"/v1/webhooks/{hook['id']}").json()
    assert shown["deliveries"] == {"pending": 0, "delivered": len(listed), "failed": 0}
    assert "secret" not in shown


def test_failures_are_retried_with_backoff_and_order_holds(
        fast_api: Api, receiver: Receiver) -> None:
    api = fast_api
    refusals = {"left": 5}
    lock = threading.Lock()

    def answer(_body: dict[str, Any]) -> int:
        with lock:
            if refusals["left"] > 0:
                refusals["left"] -= 1
                return 503
        return 200

    receiver.answer = answer
    hook = register(api, receiver.url)
    jobs = [api.submit(command="true") for _ in range(3)]
    ids = [job["id"] for job in jobs]
    for job_id in ids:
        api.wait_final(job_id)
    until(lambda: all_delivered(api, receiver, ids), what="every event delivered")
    assert refusals["left"] == 0
    assert_in_order_per_job(receiver)
    for job_id in ids:
        got = [r.seq for r in receiver.accepted() if r.job_id == job_id]
        assert got == seqs_of(api, job_id)

    listed = deliveries(api, hook["id"])
    assert all(d["status"] == "delivered" for d in listed)
    assert sum(d["attempts"] for d in listed) == len(receiver.all())
    assert sum(d["attempts"] - 1 for d in listed) == 5
    assert max(d["attempts"] for d in listed) >= 2


def test_a_failing_job_gives_up_without_holding_up_the_others(
        fast_api: Api, receiver: Receiver, tmp_path: Path) -> None:
    api = fast_api
    receiver.answer = lambda body: 500 if body["job"]["name"] == "doomed" else 204
    hook = register(api, receiver.url)
    bad = api.submit(command="true", name="doomed")
    good = api.submit(command="true", name="fine")
    for job in (bad, good):
        api.wait_final(job["id"])
    until(lambda: all_delivered(api, receiver, [good["id"]]), what="the good job's events")
    until(lambda: all(d["status"] == "failed"
                      for d in deliveries(api, hook["id"], job_id=bad["id"]))
          and len(deliveries(api, hook["id"], job_id=bad["id"])) == len(seqs_of(api, bad["id"])),
          what="the bad job's deliveries to fail")
    failed = deliveries(api, hook["id"], status="failed")
    assert {d["job_id"] for d in failed} == {bad["id"]}
    for item in failed:
        assert item["attempts"] == 4 and item["last_status_code"] == 500
        assert item["last_error"].startswith("HTTP 500")
    assert_in_order_per_job(receiver, give_up_after=4)
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["deliveries"]["failed"] == len(failed)


def test_pending_deliveries_survive_a_restart(
        settings: Settings, receiver: Receiver) -> None:
    up = threading.Event()
    receiver.answer = lambda _body: 200 if up.is_set() else 503
    with running(settings, **FAST, webhook_max_attempts=1000) as api:
        hook = register(api, receiver.url)
        job = api.submit(command="true")
        api.wait_final(job["id"])
        until(lambda: len(receiver.all()) >= 2, what="a few refused tries")
    # The gateway has stopped with every delivery still pending.
    up.set()
    with running(settings, **FAST, webhook_max_attempts=1000) as api:
        until(lambda: all_delivered(api, receiver, [job["id"]]), what="delivery after restart")
        assert_in_order_per_job(receiver)
        listed = deliveries(api, hook["id"])
        assert len(listed) == len(seqs_of(api, job["id"]))
        assert all(d["status"] == "delivered" for d in listed)
        assert listed[-1]["attempts"] >= 2  # the first event was refused before


def test_an_event_committed_after_a_later_one_is_not_missed(
        api: Api, receiver: Receiver) -> None:
    """On PostgreSQL a transaction holding seq N may commit after the one holding
    N+1: the dispatcher must not move its watermark past N meanwhile. (On SQLite
    writers queue, so the second submit simply waits for the first.)"""
    hook = register(api, receiver.url)
    inside, release = threading.Event(), threading.Event()

    def hold_open(_session: Any, _record: Any) -> None:
        inside.set()
        release.wait(30)

    admin = Principal("admin", is_admin=True)
    slow = threading.Thread(target=api.gateway.jobs.submit, args=(
        JobSpec.parse({"command": "true", "name": "slow", "hold": True}), admin, hold_open))
    slow.start()
    assert inside.wait(30)
    fast = threading.Thread(target=api.submit, kwargs={"command": "true", "hold": True})
    fast.start()
    fast.join(timeout=1.0)  # PostgreSQL: committed; SQLite: waiting for the lock
    if not fast.is_alive():
        time.sleep(1.0)  # the dispatcher looks a few times while seq N is still open
    release.set()
    slow.join(timeout=30)
    fast.join(timeout=30)
    jobs = api.get("/v1/jobs").json()["jobs"]
    assert len(jobs) == 2
    until(lambda: all_delivered(api, receiver, [j["id"] for j in jobs]), what="both events")
    assert len(deliveries(api, hook["id"])) == 2


def test_two_gateways_on_one_store_send_each_event_once(
        settings: Settings, receiver: Receiver) -> None:
    with running(settings) as first, running(settings) as second:
        register(first, receiver.url)
        jobs = [first.submit(command="true"), second.submit(command="true")]
        for job in jobs:
            first.wait_final(job["id"])
        ids = [job["id"] for job in jobs]
        until(lambda: all_delivered(first, receiver, ids), what="every event delivered")
        expected = sum(len(seqs_of(first, job_id)) for job_id in ids)
        holders = [gateway.dispatcher.owner for gateway in (first.gateway, second.gateway)
                   if gateway.dispatcher.hold_lease()]
        assert len(holders) == 1  # one dispatcher for the store
    sent = [(r.job_id, r.seq) for r in receiver.all()]
    assert len(sent) == len(set(sent)) == expected
    assert_in_order_per_job(receiver)


def test_a_users_webhook_gets_only_their_events(api: Api, receiver: Receiver) -> None:
    ana = api.add_user("ana", "ana-token")
    bob = api.add_user("bob", "bob-token")
    ana_hook = register(api, receiver.url + "/ana", headers=ana)
    assert ana_hook["user_name"] == "ana"
    admin_hook = register(api, receiver.url + "/admin")
    hers = api.post("/v1/jobs", json={"command": "true"}, headers=ana).json()
    his = api.post("/v1/jobs", json={"command": "true"}, headers=bob).json()
    for job in (hers, his):
        api.wait_final(job["id"])
    until(lambda: all_delivered(api, receiver, [hers["id"], his["id"]]), what="deliveries")
    to_ana = [r for r in receiver.all() if r.data["webhook_id"] == ana_hook["id"]]
    to_admin = [r for r in receiver.all() if r.data["webhook_id"] == admin_hook["id"]]
    assert {r.job_id for r in to_ana} == {hers["id"]}
    assert {r.job_id for r in to_admin} == {hers["id"], his["id"]}
    assert [r.seq for r in to_ana] == seqs_of(api, hers["id"])
    # Bob sees neither webhook; Ana sees hers only; the admin sees both.
    assert api.get("/v1/webhooks", headers=bob).json() == {"webhooks": []}
    assert [w["id"] for w in api.get("/v1/webhooks", headers=ana).json()["webhooks"]] == [
        ana_hook["id"]]
    listed = api.get("/v1/webhooks").json()["webhooks"]
    assert {w["id"] for w in listed} == {ana_hook["id"], admin_hook["id"]}
    assert all("secret" not in w for w in listed)


def test_owner_only_and_delete(api: Api, receiver: Receiver) -> None:
    ana = api.add_user("ana", "ana-token")
    bob = api.add_user("bob", "bob-token")
    witness = register(api, receiver.url + "/admin")
    made = api.post("/v1/webhooks", json={"url": receiver.url}, headers=ana)
    assert made.status_code == 201
    hook = made.json()
    assert len(hook["secret"]) >= 32  # made for her, shown this once
    path = f"/v1/webhooks/{hook['id']}"
    for method, url in (("GET", path), ("GET", path + "/deliveries"), ("DELETE", path)):
        answer = api.client.request(method, url, headers=bob)
        assert answer.status_code == 404, (method, url)
        assert answer.json()["error"] == "not_found"
    assert api.get(path).status_code == 200  # the admin sees it
    assert api.get(path, headers={}).status_code == 401
    assert api.client.post("/v1/webhooks", json={"url": receiver.url}).status_code == 401

    before = api.post("/v1/jobs", json={"command": "true"}, headers=ana).json()
    api.wait_final(before["id"])
    until(lambda: all_delivered(api, receiver, [before["id"]]), what="deliveries")
    sent = {r.data["webhook_id"] for r in receiver.all()}
    assert sent == {hook["id"], witness["id"]}

    assert api.client.delete(path, headers=ana).status_code == 204
    assert api.get(path, headers=ana).status_code == 404
    assert api.client.delete(path, headers=ana).status_code == 404
    after = api.post("/v1/jobs", json={"command": "true"}, headers=ana).json()
    api.wait_final(after["id"])
    # Once the admin's webhook has all of them, the deleted one would have too.
    until(lambda: all_delivered(api, receiver, [after["id"]]), what="deliveries")
    assert {r.data["webhook_id"] for r in receiver.all() if r.job_id == after["id"]} == {
        witness["id"]}


@pytest.mark.parametrize(("body", "field", "hint"), [
    ({"url": "ftp://example.org/x"}, "url", "http:// or https://"),
    ({"url": "example.org/hook"}, "url", "http:// or https://"),
    ({"url": "http:///nohost"}, "url", "must name a host"),
    ({"url": "http://example.org:99999/"}, "url", "not a valid URL"),
    ({"url": "http://exa mple.org/"}, "url", "spaces"),
    ({"url": "http://example.org/" + "x" * 2048}, "url", "2048"),
    ({"url": "https://example.org/", "secret": "short"}, "secret", "16"),
    ({"url": "https://example.org/", "secret": "x" * 257}, "secret", "256"),
    ({"url": "https://example.org/", "description": "d" * 257}, "description", "256"),
    ({"secret": SECRET}, "url", "required"),
    ({"url": "https://example.org/\ud800"}, "url", "valid string"),
    ({"url": "https://example.org/", "secret": "x" * 16 + "\u0000"}, "secret", "control"),
    ({"url": "https://example.org/", "description": "a\nb"}, "description", "control"),
])
def test_bad_registrations_are_422_saying_what_to_fix(
        api: Api, body: dict[str, Any], field: str, hint: str) -> None:
    # Sent as escaped JSON: a lone surrogate is valid JSON text, not valid UTF-8.
    answer = api.post("/v1/webhooks", content=json.dumps(body),
                      headers={**api.headers, "Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["error"] == "invalid"
    assert error["details"][0]["field"] == field
    assert hint.lower() in error["message"].lower()


def test_a_user_has_a_limited_number_of_webhooks(fast_api: Api) -> None:
    api = fast_api
    ana = api.add_user("ana", "ana-token")
    for _ in range(3):
        register(api, "https://example.org/hook", headers=ana)
    answer = api.post("/v1/webhooks", json={"url": "https://example.org/hook"}, headers=ana)
    assert answer.status_code == 422
    assert "at most 3 webhooks" in answer.json()["message"]
    register(api, "https://example.org/hook")  # the limit is per user


def test_bad_delivery_queries(api: Api) -> None:
    hook = register(api, "https://example.org/hook")
    path = f"/v1/webhooks/{hook['id']}/deliveries"
    for params in ({"status": "lost"}, {"limit": 0}, {"cursor": "garbage!"}):
        answer = api.get(path, params=params)
        assert answer.status_code == 422, params
        assert answer.json()["error"] == "invalid"
    assert api.get("/v1/webhooks/999999/deliveries").status_code == 404
