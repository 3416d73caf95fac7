"""A TestClient wrapper that speaks the jobgate API with a token."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from jobgate.service.gateway import Gateway
from jobgate.store.users import UserRepository


class Api:
    """A TestClient that sends the admin token unless told otherwise."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.client.app.state.gateway  # type: ignore[attr-defined]
        return gateway

    def post(self, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=kw.pop("headers", self.headers), **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=kw.pop("headers", self.headers), **kw)

    def submit(self, **spec: Any) -> dict[str, Any]:
        answer = self.post("/v1/jobs", json=spec)
        assert answer.status_code == 201, answer.text
        job: dict[str, Any] = answer.json()
        return job

    def wait_final(self, job_id: int, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.get(f"/v1/jobs/{job_id}").json()
            if job["final"]:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} not final after {timeout}s")

    def add_user(self, name: str, token: str) -> dict[str, str]:
        now = datetime.now(UTC)
        with self.gateway.sessions.begin() as session:
            users = UserRepository(session)
            users.add_token(users.add(name, is_admin=False, at=now), token, label="t", at=now)
        return {"Authorization": f"Bearer {token}"}
