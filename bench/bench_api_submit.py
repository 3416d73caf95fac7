"""Submit throughput and submit-to-COMPLETED latency over HTTP, against a real server.

    .venv/bin/python bench/bench_api_submit.py [N] [DATABASE_URL]

Baseline, measured in the same run: N authenticated `GET /v1/jobs?limit=1` round
trips (what any request pays). Measured: N `POST /v1/jobs` (each committed before
its 201), then the time until all N are COMPLETED.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from server_process import ServerProcess


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    env = {"JOBGATE_DATABASE_URL": sys.argv[2]} if len(sys.argv) > 2 else {}
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "home").start(**env)
        try:
            with server.client() as client:
                start = time.perf_counter()
                for _ in range(n):
                    client.get("/v1/jobs", params={"limit": 1}).raise_for_status()
                base = time.perf_counter() - start

                start = time.perf_counter()
                ids = [client.post("/v1/jobs", json={"command": "true"}).json()["id"]
                       for _ in range(n)]
                submitted = time.perf_counter() - start
                while client.get("/v1/jobs", params={"state": "COMPLETED", "limit": 1000}
                                 ).json()["jobs"].__len__() < n:
                    time.sleep(0.01)
                done = time.perf_counter() - start
                first = client.get(f"/v1/jobs/{ids[0]}").json()
        finally:
            server.stop()
    print(f"{'what':<40}{'n':>6}{'seconds':>10}{'per s':>10}{'x baseline':>12}")
    print(f"{'GET /v1/jobs?limit=1 (baseline)':<40}{n:>6}{base:>10.2f}{n / base:>10.0f}"
          f"{1:>12.2f}")
    print(f"{'POST /v1/jobs (201 after commit)':<40}{n:>6}{submitted:>10.2f}"
          f"{n / submitted:>10.0f}{submitted / base:>12.2f}")
    print(f"{'first POST -> all COMPLETED':<40}{n:>6}{done:>10.2f}{n / done:>10.0f}"
          f"{done / base:>12.2f}")
    print(f"job {first['id']}: {first['state']}, submit {first['submit_time']}, "
          f"end {first['end_time']}")


if __name__ == "__main__":
    main()
