"""A served request is freed as its answer goes out, not left to the garbage
collector: a reference cycle through the request kept it, with its headers and
its parsed body (a registry batch: thousands of objects), until the next full
collection, which then walked them all with every thread stopped."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.requests import Request

from jobgate.api.app import create_app
from jobgate.api.deps import Caller
from jobgate.config import Settings
from server_process import free_port


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The app under a real uvicorn, in this process, so that its garbage shows."""
    settings = Settings.load(home=tmp_path_factory.mktemp("garbage") / "home",
                             run_engine=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    token = settings.admin_token_path.read_text().strip()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          headers={"Authorization": f"Bearer {token}"}) as client:
            client.post("/v1/jobs", json=HELD_JOB).raise_for_status()  # job 1, to get
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


HELD_JOB = {"script": "#!/bin/sh\ntrue\n", "hold": True}
REGISTRY_BATCH = [{"cluster_id": "daint", "user": "alice", "job_id": 100 + i,
                   "state": "RUNNING", "additional_data": {"qos": "normal"}}
                  for i in range(50)]


@pytest.mark.parametrize("method, path, body, status", [
    ("POST", "/v1/registry/jobs", REGISTRY_BATCH, 200),
    ("POST", "/v1/jobs", HELD_JOB, 201),
    ("GET", "/v1/jobs", None, 200),
    ("GET", "/v1/jobs/1", None, 200),
    ("POST", "/v1/registry/jobs", [{"cluster_id": "daint"}] * 3, 200),  # all rejected
    ("POST", "/v1/jobs", {"script": 5}, 422),
])
def test_a_request_leaves_no_cyclic_garbage(served: httpx.Client, method: str, path: str,
                                            body: object, status: int) -> None:
    served.request(method, path, json=body)  # warm: first-call caches are no garbage
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds is kept here to look at
    try:
        answer = served.request(method, path, json=body)
        time.sleep(0.2)  # the server's side of it ends after the answer
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, Request | Caller)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert answer.status_code == status, answer.text
    assert not left, f"{method} {path} left {len(left)} requests to the garbage collector"
