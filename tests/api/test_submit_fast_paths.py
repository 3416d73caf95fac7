"""Submit's fast paths: a batch written in multi-row statements answers exactly
what the ledger then holds; a token is remembered for a few seconds only."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from api_client import Api
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import update

from jobgate.api.app import create_app
from jobgate.config import Settings
from jobgate.domain.spec import JobSpec
from jobgate.errors import AuthenticationError
from jobgate.service.auth import AuthService
from jobgate.service.jobs import resolve_path
from jobgate.store.tables import TokenRow
from jobgate.store.users import hash_token


def test_batch_answers_what_the_ledger_holds(api: Api, settings: Settings,
                                             tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "w").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    before = api.submit(command="true", hold=True)
    answer = api.post("/v1/jobs:batch", json={"jobs": [
        {"command": "true", "hold": True, "name": "one", "tags": ["fast", "b"]},
        {"command": "true", "hold": True, "working_directory": str(tmp_path / "link" / "w"),
         "stdout": "%x-%j.out", "tags": ["fast"]},
        {"command": "true", "hold": True, "array": "0-1", "tags": ["fast"]},
        {"command": "true", "hold": True, "tags": ["fast"]},
        {"command": "true", "hold": True, "dependencies": f"afterok:{before['id']}"},
        {"command": "true", "hold": True, "memory": "1G", "time_limit": "0:10:00"},
    ]})
    assert answer.status_code == 201, answer.text
    jobs = answer.json()["jobs"]
    ids = [job["id"] for job in jobs]
    assert ids == sorted(ids) and ids[0] > before["id"]
    assert ids[3] == ids[2] + 2  # the array's second task came in between
    for job in jobs:
        assert api.get(f"/v1/jobs/{job['id']}").json() == job
        events = api.get(f"/v1/jobs/{job['id']}/events").json()["events"]
        assert [(e["to_state"], e["reason"]) for e in events] == [("PENDING", "submitted")]
    default_dir = (settings.jobs_dir / str(ids[0])).resolve()
    assert jobs[0]["working_directory"] == str(default_dir)
    assert jobs[0]["tags"] == ["fast", "b"] and jobs[0]["held"] is True
    assert jobs[1]["working_directory"] == str(real / "w")
    assert jobs[1]["standard_output"] == str(real / "w" / f"wrap-{ids[1]}.out")
    assert (jobs[5]["memory"], jobs[5]["time_limit"]) == (1024, 600)
    listed = api.get("/v1/jobs", params={"tag": "fast", "limit": 10}).json()["jobs"]
    assert len(listed) == 5  # 3 plain jobs and 2 array tasks


def test_batch_with_an_unknown_dependency_writes_nothing(api: Api) -> None:
    refused = api.post("/v1/jobs:batch", json={"jobs": [
        {"command": "true", "tags": ["gone"]},
        {"command": "true", "tags": ["gone"], "dependencies": "afterok:99999"},
    ]})
    assert refused.status_code == 422
    assert api.get("/v1/jobs", params={"tag": "gone"}).json()["jobs"] == []


def test_resolve_path_matches_pathlib(tmp_path: Path) -> None:
    (tmp_path / "real" / "x").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "out").symlink_to(tmp_path)
    parents: dict[str, str] = {}
    for path in [tmp_path / "link" / "7", tmp_path / "link" / "x", tmp_path / "link" / "out",
                 tmp_path / "link" / "..", tmp_path / "link" / "a" / "b", Path("relative/a"),
                 tmp_path / "link" / "out" / "..", tmp_path / "link" / "." / "y"]:
        assert resolve_path(str(path), parents) == str(path.resolve())
        assert resolve_path(str(path)) == str(path.resolve())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def revoke(api: Api, token: str) -> None:
    with api.gateway.sessions.begin() as session:
        session.execute(update(TokenRow).where(TokenRow.token_hash == hash_token(token))
                        .values(revoked_at=datetime.now(UTC)))


def test_without_a_cache_a_revoked_token_fails_at_once(api: Api) -> None:
    assert api.gateway.auth.cache_seconds == 0  # the default
    headers = api.add_user("eve", "token-of-eve")
    assert api.get("/v1/jobs", headers=headers).status_code == 200
    revoke(api, "token-of-eve")
    refused = api.get("/v1/jobs", headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]


def test_a_revoked_token_works_for_at_most_the_cache_time(api: Api) -> None:
    clock = Clock()
    auth = AuthService(api.gateway.sessions, cache_seconds=5.0, clock=clock)
    api.add_user("ann", "token-of-ann")
    assert auth.authenticate("token-of-ann").name == "ann"
    revoke(api, "token-of-ann")
    clock.now += 4.9
    remembered = auth.cached("token-of-ann")
    assert remembered is not None and (remembered.name, remembered.is_admin) == ("ann", False)
    assert auth.authenticate("token-of-ann").name == "ann"
    clock.now += 0.2  # past the 5 s since the store was read
    assert auth.cached("token-of-ann") is None
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate("token-of-ann")


def test_unknown_tokens_are_never_remembered(api: Api) -> None:
    auth = AuthService(api.gateway.sessions, cache_seconds=60.0)
    with pytest.raises(AuthenticationError):
        auth.authenticate("made-a-moment-later")
    api.add_user("bob", "made-a-moment-later")
    assert auth.authenticate("made-a-moment-later").name == "bob"
    with pytest.raises(AuthenticationError, match="missing bearer token"):
        auth.authenticate(None)
    assert auth.cached(None) is None and auth.cached("") is None


def test_expiry_stays_exact_with_a_cache(api: Api) -> None:
    auth = AuthService(api.gateway.sessions, cache_seconds=60.0)
    api.add_user("fay", "token-of-fay")
    soon = datetime.now(UTC) + timedelta(seconds=1)
    with api.gateway.sessions.begin() as session:
        session.execute(update(TokenRow).where(TokenRow.token_hash == hash_token("token-of-fay"))
                        .values(expires_at=soon))
    assert auth.authenticate("token-of-fay").name == "fay"
    while datetime.now(UTC) <= soon:
        time.sleep(0.05)
    assert auth.cached("token-of-fay") is None
    with pytest.raises(AuthenticationError, match="expired"):
        auth.authenticate("token-of-fay")


def test_a_served_cache_and_forget(settings: Settings) -> None:
    cached = settings.model_copy(update={"token_cache_seconds": 30.0})
    with TestClient(create_app(cached)) as client:
        api = Api(client, cached.admin_token_path.read_text().strip())
        headers = api.add_user("cid", "token-of-cid")
        assert api.get("/v1/jobs", headers=headers).status_code == 200  # now remembered
        revoke(api, "token-of-cid")
        assert api.get("/v1/jobs", headers=headers).status_code == 200  # within the 30 s
        api.gateway.auth.forget()
        refused = api.get("/v1/jobs", headers=headers)
        assert refused.status_code == 401 and "revoked" in refused.json()["message"]
        assert api.submit(command="true", hold=True)["user_name"] == "admin"


def test_the_cache_time_is_a_setting(tmp_path: Path) -> None:
    assert Settings.load(home=tmp_path).token_cache_seconds == 0
    assert Settings.load(home=tmp_path, token_cache_seconds=5).token_cache_seconds == 5
    with pytest.raises(ValidationError):
        Settings.load(home=tmp_path, token_cache_seconds=-1)


def test_concurrent_single_submits_are_each_written_once(api: Api) -> None:
    """Submits that arrive together share transactions (service/group_commit.py):
    each caller gets its own job, with its own id, event and paths."""
    gateway = api.gateway
    user = gateway.auth.authenticate(api.token)

    def submit(i: int) -> int:
        spec = JobSpec(command="true", hold=True, name=f"c{i}", tags=[f"t{i}"], stdout="%x-%j.out")
        return gateway.jobs.submit(spec, user).id

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(submit, range(64)))
    assert len(set(ids)) == 64
    for i, job_id in enumerate(ids):
        job = api.get(f"/v1/jobs/{job_id}").json()
        assert (job["name"], job["tags"], job["held"]) == (f"c{i}", [f"t{i}"], True)
        assert job["standard_output"] == f"{job['working_directory']}/c{i}-{job_id}.out"
        events = api.get(f"/v1/jobs/{job_id}/events").json()["events"]
        assert [(e["to_state"], e["reason"]) for e in events] == [("PENDING", "submitted")]
