"""Webhook delivery throughput against a real `jobgate serve` and a local receiver.

    .venv/bin/python bench/webhook_delivery.py [N] [DATABASE_URL]

Baseline, measured in the same run: N signed POSTs of a delivery-sized JSON body
from 16 threads over one httpx client (the dispatcher's concurrency) straight to
the same receiver. Measured: N held jobs submitted in batches of 1,000 (one
event each, so N chains that need not wait for each other), from the first
submit until the receiver has all N deliveries; then the time until the
deliveries listing says all are delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from server_process import ServerProcess

SECRET = "bench-secret-0123456789abcdef"


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.n = 0


def receiver(counter: Counter) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with counter.lock:
                counter.n += 1
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_count(counter: Counter, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while counter.n < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {counter.n} of {n} arrived")
        time.sleep(0.005)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    env = {"JOBGATE_DATABASE_URL": sys.argv[2]} if len(sys.argv) > 2 else {}
    counter = Counter()
    hook_server = receiver(counter)
    url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"

    body = json.dumps({"delivery_id": 1, "webhook_id": 1, "event": {
        "seq": 1, "job_id": 1, "at": "2026-01-01T00:00:00+00:00", "from_state": None,
        "to_state": "PENDING", "reason": "submitted", "data": {}},
        "job": {"id": 1, "name": "bench", "user_name": "admin", "cluster": "local"}}).encode()
    with httpx.Client(timeout=10) as raw:
        def post(i: int) -> None:
            signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            raw.post(url, content=body, headers={
                "Content-Type": "application/json", "X-Jobgate-Delivery": str(i),
                "X-Jobgate-Signature": f"sha256={signature}"}).raise_for_status()

        start = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(post, range(n)))
        base = time.perf_counter() - start
    counter.n = 0

    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "home").start(JOBGATE_SUBMIT_RATE="0", **env)
        try:
            with server.client() as client:
                hook = client.post("/v1/webhooks", json={"url": url, "secret": SECRET}).json()
                start = time.perf_counter()
                for first in range(0, n, 1000):
                    jobs = [{"command": "true", "hold": True}
                            for _ in range(min(1000, n - first))]
                    client.post("/v1/jobs:batch", json={"jobs": jobs}).raise_for_status()
                submitted = time.perf_counter() - start
                wait_count(counter, n)
                arrived = time.perf_counter() - start
                while client.get(f"/v1/webhooks/{hook['id']}").json()[
                        "deliveries"]["delivered"] < n:
                    time.sleep(0.01)
                recorded = time.perf_counter() - start
        finally:
            server.stop()
            hook_server.shutdown()

    print(f"{'what':<52}{'n':>7}{'seconds':>9}{'per s':>9}{'x baseline':>12}")
    print(f"{'raw signed POSTs, 16 threads (baseline)':<52}{n:>7}{base:>9.2f}"
          f"{n / base:>9.0f}{1:>12.2f}")
    print(f"{'submit N held jobs (batches of 1,000)':<52}{n:>7}{submitted:>9.2f}"
          f"{n / submitted:>9.0f}{submitted / base:>12.2f}")
    print(f"{'first submit -> receiver has all N':<52}{n:>7}{arrived:>9.2f}"
          f"{n / arrived:>9.0f}{arrived / base:>12.2f}")
    print(f"{'first submit -> all N recorded delivered':<52}{n:>7}{recorded:>9.2f}"
          f"{n / recorded:>9.0f}{recorded / base:>12.2f}")


if __name__ == "__main__":
    main()
