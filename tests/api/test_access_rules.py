"""Issue 6's rules through the real app: tokens stored only as hashes and failing
at once once revoked, expired or disabled; service accounts kept to their
projects' users and partitions; failed authentications slowed down; admin holds
for admins only; the audit log's contents, filters and pages."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_client import Api
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, select

from jobgate.api.app import create_app
from jobgate.config import ClusterConfig, PartitionConfig, Settings


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


@pytest.fixture
def two_partitions(tmp_path: Path, db_url: str) -> Iterator[Api]:
    """The local cluster with partitions `normal` (default) and `big`."""
    cluster = ClusterConfig(partitions=[PartitionConfig(name="normal", default=True),
                                        PartitionConfig(name="big")])
    settings = Settings.load(home=tmp_path / "home", database_url=db_url, kill_wait=1.0,
                             engine_interval=0.1, clusters={"local": cluster})
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings.admin_token_path.read_text().strip())


class People:
    """Projects P (partition `normal` only, account acct-p) and Q; ana and mia in
    P (mia manages it), max a member of P, bob only in Q, olga in none; `svc`
    holds a service-account token for P's users."""

    def __init__(self, api: Api) -> None:
        self.api = api
        ok(api.post("/v1/admin/projects", json={
            "name": "P", "partitions": ["normal"], "account": "acct-p"}), 201)
        ok(api.post("/v1/admin/projects", json={"name": "Q"}), 201)
        self.tokens: dict[str, str] = {}
        for name in ("ana", "mia", "max", "bob", "olga", "svc"):
            ok(api.post("/v1/admin/users", json={"name": name}), 201)
            self.tokens[name] = self.token(name, acts_for=["P"] if name == "svc" else None)
        for project, name, role in (("P", "ana", "member"), ("P", "mia", "manager"),
                                    ("P", "max", "member"), ("Q", "bob", "member")):
            ok(api.client.put(f"/v1/admin/projects/{project}/members/{name}",
                              headers=api.headers, json={"role": role}))

    def token(self, user: str, **body: Any) -> str:
        created = ok(self.api.post("/v1/admin/tokens", json={"user": user, **body}), 201)
        secret: str = created["token"]
        return secret

    def h(self, name: str, on_behalf_of: str | None = None) -> dict[str, str]:
        headers = bearer(self.tokens[name])
        if on_behalf_of is not None:
            headers["X-On-Behalf-Of"] = on_behalf_of
        return headers


def test_tokens_are_stored_only_as_hashes(api: Api, db_url: str) -> None:
    people = People(api)
    secrets = [api.token, *people.tokens.values()]
    # Used once each, so that last-use times and the audit log have been written.
    for name in people.tokens:
        ok(api.get("/v1/me", headers=people.h(name)))
    ok(api.get("/v1/me", headers=people.h("svc", on_behalf_of="ana")))
    api.gateway.audit.flush()

    engine = create_engine(db_url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            found = []
            for table in metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    text = repr(tuple(row))
                    found += [(table.name, s[:6]) for s in secrets if s in text]
            hashes = set(conn.execute(select(metadata.tables["tokens"].c.token_hash)).scalars())
    finally:
        engine.dispose()
    assert found == [], "a token stored in clear"
    assert {hashlib.sha256(s.encode()).hexdigest() for s in secrets} <= hashes


def test_revoked_token_fails_on_the_very_next_request(api: Api) -> None:
    people = People(api)
    ana = people.token("ana", label="laptop")
    ok(api.get("/v1/me", headers=bearer(ana)))
    key = next(t["key_id"] for t in ok(api.get("/v1/admin/tokens", params={"user": "ana"}))
               ["tokens"] if t["label"] == "laptop")
    assert ok(api.client.delete(f"/v1/admin/tokens/{key}", headers=api.headers), 204) is None
    answer = api.get("/v1/me", headers=bearer(ana))
    assert answer.status_code == 401
    assert "revoked" in answer.json()["message"]
    # Her other token still works; disabling her stops it at once too.
    ok(api.get("/v1/me", headers=people.h("ana")))
    ok(api.client.patch("/v1/admin/users/ana", headers=api.headers, json={"active": False}))
    answer = api.get("/v1/me", headers=people.h("ana"))
    assert answer.status_code == 401 and "disabled" in answer.json()["message"]
    ok(api.client.patch("/v1/admin/users/ana", headers=api.headers, json={"active": True}))
    ok(api.get("/v1/me", headers=people.h("ana")))


def test_expired_token_fails_on_the_very_next_request(api: Api) -> None:
    People(api)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    refused = api.post("/v1/admin/tokens", json={"user": "ana", "expires_at": past})
    assert refused.status_code == 422 and "future" in refused.text
    expires = datetime.now(UTC) + timedelta(seconds=5)
    created = ok(api.post("/v1/admin/tokens", json={"user": "ana",
                                                    "expires_at": expires.isoformat()}), 201)
    assert datetime.fromisoformat(created["expires_at"]) == expires
    ok(api.get("/v1/me", headers=bearer(created["token"])))
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    answer = api.get("/v1/me", headers=bearer(created["token"]))
    assert answer.status_code == 401
    assert "expired" in answer.json()["message"]


def test_service_account_acts_only_for_its_projects_users_and_partitions(
        two_partitions: Api) -> None:
    api = two_partitions
    people = People(api)
    svc_for_ana = people.h("svc", on_behalf_of="ana")

    job = ok(api.post("/v1/jobs", headers=svc_for_ana, json={"command": "true", "hold": True}),
             201)
    assert (job["user_name"], job["project"], job["account"]) == ("ana", "P", "acct-p")
    events = ok(api.get(f"/v1/jobs/{job['id']}/events", headers=svc_for_ana))["events"]
    assert events[0]["reason"] == "submitted by ana (via svc)"
    ok(api.post(f"/v1/jobs/{job['id']}/release", headers=svc_for_ana))
    events = ok(api.get(f"/v1/jobs/{job['id']}/events", headers=people.h("ana")))["events"]
    assert "released by ana (via svc)" in [e["reason"] for e in events]
    me = ok(api.get("/v1/me", headers=svc_for_ana))
    assert (me["name"], me["acting_for"]) == ("svc", "ana")

    # A partition P may not use: 403 naming it, for ana herself as through svc.
    for headers in (svc_for_ana, people.h("ana")):
        answer = api.post("/v1/jobs", headers=headers, json={"command": "true",
                                                             "partition": "big"})
        assert answer.status_code == 403, answer.text
        assert "'big'" in answer.json()["message"] and "'P'" in answer.json()["message"]
    answer = api.post("/v1/jobs", headers=svc_for_ana, json={"command": "true",
                                                            "project": "Q"})
    assert answer.status_code == 403 and "'Q'" in answer.json()["message"]

    # Users outside P (in Q only, in no project, unknown): 403 naming them.
    for outsider in ("bob", "olga", "nobody"):
        answer = api.post("/v1/jobs", headers=people.h("svc", on_behalf_of=outsider),
                          json={"command": "true", "hold": True})
        assert answer.status_code == 403, answer.text
        assert repr(outsider) in answer.json()["message"]
        assert api.get("/v1/me", headers=people.h("svc", on_behalf_of=outsider)
                       ).status_code == 403

    # Through svc, ana sees P's jobs only: bob's job in Q is not there.
    bobs = ok(api.post("/v1/jobs", headers=people.h("bob"),
                       json={"command": "true", "hold": True}), 201)
    assert api.get(f"/v1/jobs/{bobs['id']}", headers=svc_for_ana).status_code == 404
    listed = ok(api.get("/v1/jobs", headers=svc_for_ana))["jobs"]
    assert {j["id"] for j in listed} == {job["id"]}

    # A plain user's token may not act for others.
    answer = api.get("/v1/me", headers={**people.h("mia"), "X-On-Behalf-Of": "ana"})
    assert answer.status_code == 403 and "service account" in answer.json()["message"]


def test_failed_authentications_get_429_with_retry_after(api: Api) -> None:
    limit = api.gateway.settings.auth_failure_limit
    window = api.gateway.settings.auth_failure_window
    assert limit > 0
    for attempt in range(limit):
        answer = api.get("/v1/me", headers=bearer(f"jg_wrong{attempt}"))
        assert answer.status_code == 401, (attempt, answer.text)
    # Past the limit every request from the address waits, a good token's too.
    for headers in (bearer("jg_wrong"), api.headers):
        answer = api.get("/v1/jobs", headers=headers)
        assert answer.status_code == 429, answer.text
        assert 1 <= int(answer.headers["Retry-After"]) <= window
        assert "too many failed authentications" in answer.json()["message"]
    # Another address is not slowed down.
    other = TestClient(api.client.app, client=("192.0.2.7", 40000))
    assert other.get("/v1/me", headers=api.headers).status_code == 200


def test_admin_hold_and_release_of_an_admin_hold_are_for_admins(api: Api) -> None:
    people = People(api)
    job = ok(api.post("/v1/jobs", headers=people.h("ana"), json={"command": "sleep 100",
                                                                 "hold": True}), 201)
    hold, release = f"/v1/jobs/{job['id']}/hold", f"/v1/jobs/{job['id']}/release"
    admin_mode = {"mode": "admin"}
    expected = {"ana": 403, "mia": 403, "max": 403, "bob": 404, "olga": 404}
    for name, status in expected.items():
        answer = api.post(hold, headers=people.h(name), json=admin_mode)
        assert answer.status_code == status, (name, answer.text)
    answer = api.post(hold, headers=people.h("svc", on_behalf_of="ana"), json=admin_mode)
    assert answer.status_code == 403
    held = ok(api.post(hold, json=admin_mode))
    assert (held["held"], held["state_reason"]) == (True, "JobHeldAdmin")
    for name, status in expected.items():
        answer = api.post(release, headers=people.h(name))
        assert answer.status_code == status, (name, answer.text)
        if status == 403 and name != "max":
            assert "admin hold" in answer.json()["message"]
    assert ok(api.get(f"/v1/jobs/{job['id']}"))["state_reason"] == "JobHeldAdmin"
    released = ok(api.post(release))
    assert released["held"] is False
    ok(api.post(f"/v1/jobs/{job['id']}/cancel"))
    # A user hold: the project's manager releases it, a member may not.
    other = ok(api.post("/v1/jobs", headers=people.h("ana"), json={"command": "sleep 100",
                                                                   "hold": True}), 201)
    release = f"/v1/jobs/{other['id']}/release"
    assert api.post(release, headers=people.h("max")).status_code == 403
    assert api.post(release, headers=people.h("bob")).status_code == 404
    assert ok(api.post(release, headers=people.h("mia")))["held"] is False
    ok(api.post(f"/v1/jobs/{other['id']}/cancel", headers=people.h("ana")))


def test_audit_records_who_for_whom_what_when_where_and_pages(api: Api) -> None:
    people = People(api)
    start = datetime.now(UTC)
    svc_for_ana = people.h("svc", on_behalf_of="ana")
    ids = [ok(api.post("/v1/jobs", headers=svc_for_ana,
                       json={"command": "true", "hold": True}), 201)["id"] for _ in range(3)]
    ok(api.post(f"/v1/jobs/{ids[0]}/cancel?why=test", headers=svc_for_ana))
    assert api.post("/v1/jobs", headers=bearer("jg_wrong"), json={"command": "true"}
                    ).status_code == 401
    ok(api.get("/v1/jobs", headers=svc_for_ana))  # a read: not audited
    end = datetime.now(UTC)

    def read(**params: Any) -> dict[str, Any]:
        found: dict[str, Any] = ok(api.get("/v1/admin/audit", params=params))
        return found

    mine = read(actor="svc")["entries"]
    assert [(e["method"], e["path"], e["status"]) for e in mine] == [
        ("POST", f"/v1/jobs/{ids[0]}/cancel?why=test", 200),
        *[("POST", "/v1/jobs", 201)] * 3]
    for entry in mine:
        assert (entry["actor"], entry["on_behalf_of"], entry["address"]) == \
            ("svc", "ana", "testclient")
        assert start <= datetime.fromisoformat(entry["at"]) <= end
    assert [e["id"] for e in mine] == sorted((e["id"] for e in mine), reverse=True)
    assert read(on_behalf_of="ana")["entries"] == mine
    failed = read(status=401)["entries"]
    assert [(e["actor"], e["on_behalf_of"], e["path"]) for e in failed] == [
        (None, None, "/v1/jobs")]
    assert read(path="/v1/jobs/", actor="svc")["entries"] == mine[:1]
    assert read(method="post", status=201, actor="svc")["entries"] == mine[1:]
    assert all(e["method"] != "GET" for e in read(limit=1000)["entries"])
    assert read(actor="svc", since=end.isoformat())["entries"] == []
    assert read(actor="svc", until=start.isoformat())["entries"] == []
    # The admin's own calls (People's set-up) are there, named.
    setup = read(actor="admin", path="/v1/admin/")["entries"]
    assert {e["path"] for e in setup} >= {"/v1/admin/users", "/v1/admin/projects",
                                          "/v1/admin/tokens", "/v1/admin/projects/P/members/ana"}

    # Pages of 2 walk all of them once, newest first.
    everything = read(limit=1000)["entries"]
    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = read(limit=2, **({"cursor": cursor} if cursor else {}))
        walked += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == everything and len(everything) > 10

    # Admins only; a bad cursor or limit says what to fix.
    assert api.get("/v1/admin/audit", headers=people.h("mia")).status_code == 403
    assert api.get("/v1/admin/audit", params={"limit": 0}).status_code == 422
    assert api.get("/v1/admin/audit", params={"cursor": "zzz"}).status_code in (400, 422)
