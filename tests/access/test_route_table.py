"""Role x ownership x verb x route: every route of the API, each cell its exact
status. The routes come from the app itself: a new route without a row fails."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobgate.api.app import create_app
from jobgate.config import Settings
from server_process import ServerProcess

ROLES = ("admin", "owner", "manager", "member", "outsider", "service")
_names = itertools.count()


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, routers included."""
    app = create_app(Settings(home=Path("unused")))
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        candidates = route.effective_candidates() if hasattr(route, "effective_candidates") \
            else [route]
        for candidate in candidates:
            for method in getattr(candidate, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, candidate.path))
    return found


class World:
    """A live server with: ana (owner, member of P), mia (manager of P), max
    (member of P), olga (in no project), a service account acting for P's users."""

    def __init__(self, server: ServerProcess) -> None:
        self.url = server.url
        self.http = httpx.Client(base_url=server.url, timeout=30)
        self.headers = {"admin": {"Authorization": f"Bearer {server.token}"}}
        admin = self.headers["admin"]
        self.ok(self.http.post("/v1/admin/projects", headers=admin, json={"name": "P"}))
        for role, name in (("owner", "ana"), ("manager", "mia"), ("member", "max"),
                           ("outsider", "olga"), (None, "svc"), (None, "zed")):
            self.ok(self.http.post("/v1/admin/users", headers=admin, json={"name": name}))
            token = self.ok(self.http.post("/v1/admin/tokens", headers=admin, json={
                "user": name, "acts_for": ["P"] if name == "svc" else None}))["token"]
            if role is not None:
                self.headers[role] = {"Authorization": f"Bearer {token}"}
            if name == "svc":
                self.headers["service"] = {"Authorization": f"Bearer {token}",
                                           "X-On-Behalf-Of": "ana"}
        for name, role in (("ana", "member"), ("mia", "manager"), ("max", "member")):
            self.ok(self.http.put(f"/v1/admin/projects/P/members/{name}", headers=admin,
                                  json={"role": role}))
        # Jobs made for one cell, cancelled once it is asked (none holds a CPU
        # another cell's running job waits for).
        self.started: list[int] = []
        done = self.job(command="echo hi > out.txt; echo out; echo err >&2")
        self.ok(self.http.get(f"/v1/jobs/{done}/wait", headers=admin, params={"timeout": 30}))
        self.done = done
        self.started.clear()

    @staticmethod
    def ok(answer: httpx.Response) -> Any:
        assert answer.is_success, answer.text
        return answer.json()

    def job(self, **spec: Any) -> int:
        """A job of ana in P (held pending unless a command is given)."""
        spec = spec or {"command": "sleep 100", "hold": True}
        job_id = int(self.ok(self.http.post("/v1/jobs", headers=self.headers["owner"],
                                            json=spec))["id"])
        self.started.append(job_id)
        return job_id

    def state(self, job_id: int, *states: str, timeout: float = 60) -> None:
        """Wait for one of `states` (for "gone": the job was deleted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.http.get(f"/v1/jobs/{job_id}", headers=self.headers["admin"])
            if answer.status_code == 404 and "gone" in states:
                return
            job = self.ok(answer)
            if job["state"] in states:
                return
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} never {states}: {job}")

    def running(self) -> int:
        """A job of ana in P, running: its process has written to its output (the
        local cluster may show RUNNING a moment before its process is there)."""
        job_id = self.job(command="echo up; sleep 300")
        self.state(job_id, "RUNNING")
        deadline = time.monotonic() + 60
        while "up" not in self.http.get(f"/v1/jobs/{job_id}/stdout",
                                        headers=self.headers["admin"]).text:
            assert time.monotonic() < deadline, f"job {job_id} never wrote its output"
            time.sleep(0.05)
        return job_id

    def tidy(self) -> None:
        for job_id in self.started:
            self.http.post(f"/v1/jobs/{job_id}/cancel", headers=self.headers["admin"])
        for job_id in self.started:
            self.state(job_id, "CANCELLED", "COMPLETED", "FAILED", "gone")
        self.started.clear()

    def webhook(self) -> int:
        return int(self.ok(self.http.post("/v1/webhooks", headers=self.headers["owner"], json={
            "url": "http://127.0.0.1:9/hook"}))["id"])

    def admin_post(self, path: str, body: dict[str, Any]) -> Any:
        return self.ok(self.http.post(path, headers=self.headers["admin"], json=body))


Prepare = Callable[[World], tuple[str, dict[str, Any]]]


def held(template: str, body: Any = None, params: Any = None) -> Prepare:
    return lambda w: (template.format(id=w.job()), {"json": body, "params": params})


def running(template: str, body: Any = None) -> Prepare:
    return lambda w: (template.format(id=w.running()), {"json": body})


def suspended(template: str) -> Prepare:
    def prepare(w: World) -> tuple[str, dict[str, Any]]:
        job_id = w.running()
        w.ok(w.http.post(f"/v1/jobs/{job_id}/suspend", headers=w.headers["admin"]))
        return template.format(id=job_id), {}
    return prepare


def ended(template: str, body: Any = None) -> Prepare:
    def prepare(w: World) -> tuple[str, dict[str, Any]]:
        job_id = w.job(command="true")
        w.state(job_id, "COMPLETED")
        return template.format(id=job_id), {"json": body}
    return prepare


def done(template: str, params: Any = None) -> Prepare:
    return lambda w: (template.format(id=w.done), {"params": params})


def fixed(path: str, body: Any = None, params: Any = None) -> Prepare:
    return lambda _w: (path, {"json": body, "params": params})


def fresh_user(w: World) -> tuple[str, dict[str, Any]]:
    return "/v1/admin/users", {"json": {"name": f"u{next(_names)}"}}


def fresh_project(w: World) -> tuple[str, dict[str, Any]]:
    return "/v1/admin/projects", {"json": {"name": f"p{next(_names)}"}}


def zed_member(w: World) -> tuple[str, dict[str, Any]]:
    w.ok(w.http.put("/v1/admin/projects/P/members/zed", headers=w.headers["admin"]))
    return "/v1/admin/projects/P/members/zed", {}


def zed_token(w: World) -> tuple[str, dict[str, Any]]:
    key = w.admin_post("/v1/admin/tokens", {"user": "zed"})["key_id"]
    return f"/v1/admin/tokens/{key}", {}


def webhook(suffix: str = "") -> Prepare:
    return lambda w: (f"/v1/webhooks/{w.webhook()}{suffix}", {})


ALL = dict.fromkeys(ROLES)
# Statuses in ROLES order: admin, owner, manager, member, outsider, service.
SEE = (200, 200, 200, 200, 404, 200)       # read a job of ana in P
STEER = (200, 200, 200, 403, 404, 200)     # change it (a member reads only)
ADMIN = (200, 403, 403, 403, 403, 403)
EVERYONE = (200,) * 6
TABLE: dict[tuple[str, str], tuple[Prepare, tuple[int, ...]]] = {
    ("GET", "/openapi.json"): (fixed("/openapi.json"), EVERYONE),
    ("GET", "/docs"): (fixed("/docs"), EVERYONE),
    ("GET", "/docs/oauth2-redirect"): (fixed("/docs/oauth2-redirect"), EVERYONE),
    ("GET", "/redoc"): (fixed("/redoc"), EVERYONE),
    ("GET", "/healthz"): (fixed("/healthz"), EVERYONE),
    ("GET", "/metrics"): (fixed("/metrics"), ADMIN),
    ("GET", "/v1/me"): (fixed("/v1/me"), EVERYONE),
    ("GET", "/v1/clusters"): (fixed("/v1/clusters"), EVERYONE),
    ("GET", "/v1/clusters/{name}"): (fixed("/v1/clusters/local"), EVERYONE),
    ("GET", "/v1/stats"): (fixed("/v1/stats", params={"group_by": "project"}), EVERYONE),
    ("GET", "/v1/events"): (fixed("/v1/events"), EVERYONE),
    ("GET", "/v1/events/stream"): (fixed("/v1/events/stream"), EVERYONE),
    ("POST", "/v1/jobs"): (fixed("/v1/jobs", {"command": "true", "hold": True}),
                           (201,) * 6),
    ("POST", "/v1/jobs:batch"): (fixed("/v1/jobs:batch", {"jobs": [{"command": "true",
                                                                     "hold": True}]}),
                                 (201,) * 6),
    ("GET", "/v1/jobs"): (fixed("/v1/jobs"), EVERYONE),
    ("GET", "/v1/jobs/{job_id}"): (done("/v1/jobs/{id}"), SEE),
    ("GET", "/v1/jobs/{job_id}/events"): (done("/v1/jobs/{id}/events"), SEE),
    ("GET", "/v1/jobs/{job_id}/stdout"): (done("/v1/jobs/{id}/stdout"), SEE),
    ("GET", "/v1/jobs/{job_id}/stderr"): (done("/v1/jobs/{id}/stderr"), SEE),
    ("GET", "/v1/jobs/{job_id}/script"): (done("/v1/jobs/{id}/script"), SEE),
    ("GET", "/v1/jobs/{job_id}/stats"): (done("/v1/jobs/{id}/stats"), SEE),
    ("GET", "/v1/jobs/{job_id}/wait"): (done("/v1/jobs/{id}/wait"), SEE),
    ("GET", "/v1/jobs/{job_id}/files"): (done("/v1/jobs/{id}/files"), SEE),
    ("GET", "/v1/jobs/{job_id}/files/{path:path}"): (done("/v1/jobs/{id}/files/out.txt"), SEE),
    ("POST", "/v1/jobs/{job_id}/cancel"): (held("/v1/jobs/{id}/cancel"), STEER),
    ("DELETE", "/v1/jobs/{job_id}"): (held("/v1/jobs/{id}", params={"force": "true"}),
                                      (204, 204, 204, 403, 404, 204)),
    ("PATCH", "/v1/jobs/{job_id}"): (held("/v1/jobs/{id}", {"comment": "x"}), STEER),
    ("POST", "/v1/jobs/{job_id}/hold"): (held("/v1/jobs/{id}/hold"), STEER),
    ("POST", "/v1/jobs/{job_id}/release"): (held("/v1/jobs/{id}/release"), STEER),
    # Each verb on a job in a state it applies to: allowed callers get 200.
    ("POST", "/v1/jobs/{job_id}/requeue"): (ended("/v1/jobs/{id}/requeue", {"hold": True}),
                                            STEER),
    ("POST", "/v1/jobs/{job_id}/suspend"): (running("/v1/jobs/{id}/suspend"), STEER),
    ("POST", "/v1/jobs/{job_id}/resume"): (suspended("/v1/jobs/{id}/resume"), STEER),
    ("POST", "/v1/jobs/{job_id}/signal"): (running("/v1/jobs/{id}/signal", {"signal": "USR1"}),
                                           STEER),
    ("POST", "/v1/jobs/{job_id}/notify"): (running("/v1/jobs/{id}/notify", {"message": "hi"}),
                                           STEER),
    ("POST", "/v1/registry/jobs"): (fixed("/v1/registry/jobs", [{
        "cluster_id": "ext", "user": "ana", "job_id": "1", "state": "COMPLETED"}]), ADMIN),
    # Webhooks are their user's own (ana's here): nobody else sees them but admins.
    ("POST", "/v1/webhooks"): (fixed("/v1/webhooks", {"url": "http://127.0.0.1:9/h"}),
                               (201,) * 6),
    ("GET", "/v1/webhooks"): (fixed("/v1/webhooks"), EVERYONE),
    ("GET", "/v1/webhooks/{webhook_id}"): (webhook(), (200, 200, 404, 404, 404, 200)),
    ("DELETE", "/v1/webhooks/{webhook_id}"): (webhook(), (204, 204, 404, 404, 404, 204)),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): (webhook("/deliveries"),
                                                      (200, 200, 404, 404, 404, 200)),
    ("POST", "/v1/admin/users"): (fresh_user, (201, 403, 403, 403, 403, 403)),
    ("GET", "/v1/admin/users"): (fixed("/v1/admin/users"), ADMIN),
    ("GET", "/v1/admin/users/{name}"): (fixed("/v1/admin/users/ana"), ADMIN),
    ("PATCH", "/v1/admin/users/{name}"): (fixed("/v1/admin/users/zed", {"active": True}),
                                          ADMIN),
    ("POST", "/v1/admin/projects"): (fresh_project, (201, 403, 403, 403, 403, 403)),
    ("GET", "/v1/admin/projects"): (fixed("/v1/admin/projects"), ADMIN),
    ("GET", "/v1/admin/projects/{name}"): (fixed("/v1/admin/projects/P"), ADMIN),
    ("PUT", "/v1/admin/projects/{name}/members/{user}"): (
        fixed("/v1/admin/projects/P/members/zed", {"role": "member"}), ADMIN),
    ("DELETE", "/v1/admin/projects/{name}/members/{user}"): (zed_member, ADMIN),
    ("POST", "/v1/admin/tokens"): (fixed("/v1/admin/tokens", {"user": "zed"}),
                                   (201, 403, 403, 403, 403, 403)),
    ("GET", "/v1/admin/tokens"): (fixed("/v1/admin/tokens"), ADMIN),
    ("DELETE", "/v1/admin/tokens/{key_id}"): (zed_token, (204, 403, 403, 403, 403, 403)),
    ("GET", "/v1/admin/audit"): (fixed("/v1/admin/audit"), ADMIN),
}
UNAUTHENTICATED_OK = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz"}


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    server = ServerProcess(tmp_path / "home").start(JOBGATE_DATABASE_URL=db_url)
    try:
        world = World(server)
        try:
            yield world
        finally:
            world.http.close()
    finally:
        server.stop()


def test_every_route_has_a_row() -> None:
    routes = app_routes()
    assert routes - set(TABLE) == set(), "routes without a row in the access table"
    assert set(TABLE) - routes == set(), "rows naming no route"


def call(w: World, method: str, path: str, headers: dict[str, str],
         **kw: Any) -> tuple[int, str]:
    """The status, and the start of the body (to tell why a cell is wrong)."""
    if path.endswith("/stream"):  # endless: the status line is enough
        with w.http.stream(method, path, headers=headers) as answer:
            return answer.status_code, ""
    kw = {k: v for k, v in kw.items() if v is not None}
    answer = w.http.request(method, path, headers=headers, **kw)
    return answer.status_code, answer.text[:200]


def test_route_table(world: World) -> None:
    wrong = []
    for (method, _route), (prepare, statuses) in sorted(TABLE.items()):
        for role, expected in zip(ROLES, statuses, strict=True):
            path, kw = prepare(world)
            got, text = call(world, method, path, world.headers[role], **kw)
            world.tidy()
            if got != expected:
                wrong.append(f"{role:8} {method} {path}: {got}, not {expected}: {text}")
        path, kw = prepare(world)
        got, text = call(world, method, path, {}, **kw)
        world.tidy()
        anonymous = 200 if _route in UNAUTHENTICATED_OK else 401
        if got != anonymous and not (_route == "/metrics" and got == 401):
            wrong.append(f"anonymous {method} {path}: {got}, not {anonymous}: {text}")
    assert not wrong, "\n".join(wrong)
