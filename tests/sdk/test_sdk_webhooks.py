"""`client.webhooks` against a real `jobgate serve` and a real HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jobgate import Client, InvalidSpecError, NotFoundError

SECRET = "sdk-webhook-secret-0123456789"


@pytest.fixture
def received() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((dict(self.headers.items()),
                        self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sdk", got
    finally:
        server.shutdown()
        server.server_close()


def test_create_list_deliveries_delete(
        client: Client, received: tuple[str, list[tuple[dict[str, str], bytes]]]) -> None:
    url, got = received
    hook = client.webhooks.create(url, secret=SECRET, description="sdk")
    assert hook["secret"] == SECRET and hook["url"] == url
    assert hook["id"] in [w["id"] for w in client.webhooks.list()]
    assert "secret" not in client.webhooks.get(hook["id"])

    job = client.submit(command="true")
    job.wait(timeout=60)
    expected = [e["seq"] for e in client.events(job.id)]

    def mine() -> list[int]:
        seqs = []
        for headers, body in list(got):
            data = json.loads(body)
            if data["event"]["job_id"] == job.id:
                digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                assert headers["X-Jobgate-Signature"] == f"sha256={digest}"
                seqs.append(data["event"]["seq"])
        return seqs

    deadline = time.monotonic() + 60
    while mine() != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mine() == expected
    listed = client.webhooks.deliveries(hook["id"], job_id=job.id, status="delivered")
    assert sorted(d["event_seq"] for d in listed) == expected
    assert all(d["attempts"] == 1 and d["last_status_code"] == 204 for d in listed)

    client.webhooks.delete(hook["id"])
    with pytest.raises(NotFoundError):
        client.webhooks.get(hook["id"])
    with pytest.raises(NotFoundError):
        client.webhooks.delete(hook["id"])


def test_a_bad_url_is_refused(client: Client) -> None:
    with pytest.raises(InvalidSpecError, match="http:// or https://"):
        client.webhooks.create("ftp://example.org/x")
    with pytest.raises(InvalidSpecError, match="at least 16 characters"):
        client.webhooks.create("https://example.org/x", secret="short")
