"""Local cluster throughput and latency, beside this machine's spawn ceiling.

    .venv/bin/python bench/local_throughput.py [N] [--http] [--concurrency C]
                                               [--latency-jobs K] [--batch B] [--dir D]

Ceiling (same run): N Popen of `/bin/sh -c true` in a new session with stdout and
stderr to files, from 2 threads. Measured: N jobs running `true` submitted through
JobService (in process, with the engine) one at a time and in `submit_many`
batches of --batch, and with --http through the REST API
of a `jobgate serve` (single submits over --concurrency connections), timed from
the first submit until all are final. Latency:
K jobs one at a time on the idle cluster; submit -> RUNNING from the ledger's
times, and process exit -> final state committed (visible through the API).
First it prints what a file create costs now (see create_cost): it sets how
much of the ceiling the jobs can reach, since a job creates more files than the
ceiling's child does. With --dir /dev/shm (a tmpfs) every row runs without the
disk's file system: the figures then say what the processes cost, and do not
swing with the disk's state from one run to the next.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_load import request_bytes, run_load

from jobgate.config import ClusterConfig, Settings
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway
from jobgate.store.tables import JobRow
from server_process import ServerProcess

ADMIN = Principal("admin", is_admin=True)
# Enough CPU slots that the scheduler never makes `true` jobs wait for a core:
# what is measured is the gateway, not the queue.
WIDE = {"local": ClusterConfig(cpus=64)}


def ceiling(n: int, root: Path) -> float:
    root.mkdir(parents=True, exist_ok=True)
    counter = iter(range(n))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            with open(root / f"{i}.out", "wb") as out, open(root / f"{i}.err", "wb") as err:
                subprocess.Popen(["/bin/sh", "-c", "true"], stdout=out, stderr=err,
                                 start_new_session=True).wait()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def create_cost(root: Path, n: int = 500) -> float:
    """Seconds of CPU one file create costs here now. Each job creates files (its
    run record, its directory, its output), and so does the ceiling (its two
    outputs); on ext4 without a journal a create scans the inodes deleted in the
    last seconds, so after a mass deletion (a test run, a bench's clean-up) it
    costs 10-25 times more for a while, and every figure moves with it."""
    root.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    for i in range(n):
        os.close(os.open(root / str(i), os.O_CREAT | os.O_WRONLY, 0o644))
    return (time.process_time() - start) / n


def through_service(n: int, home: Path, batch: int = 1) -> float:
    """One submit at a time, or `submit_many` of `batch` jobs at a time."""
    gateway = Gateway(Settings.load(home=home, engine_interval=0.05, clusters=WIDE))
    gateway.start()
    try:
        spec = JobSpec.parse({"command": "true"})
        start = time.perf_counter()
        for first in range(0, n, batch):
            if batch == 1:
                gateway.jobs.submit(spec, ADMIN)
            else:
                gateway.jobs.submit_many([spec] * min(batch, n - first), ADMIN)
        while True:  # every job is in the ledger by now
            if all_final(gateway):
                return time.perf_counter() - start
            time.sleep(0.02)
    finally:
        gateway.stop()


def all_final(gateway: Gateway) -> bool:
    """Whether no job is left that has not ended: one look down the state index
    (counting the final ones, a growing scan, took a tenth of the process's time)."""
    with gateway.sessions() as session:
        return session.scalar(select(JobRow.id).where(JobRow.state.in_(
            [s.value for s in JobState if not s.final])).limit(1)) is None


def through_http(n: int, home: Path, concurrency: int) -> float:
    """`n` single POST /v1/jobs over `concurrency` keep-alive connections (the
    load generator of bench/http_load.py), then polled until all are final."""
    server = ServerProcess(home).start(
        JOBGATE_CLUSTERS='{"local": {"cpus": 64}}', JOBGATE_ENGINE_INTERVAL="0.05",
        JOBGATE_SUBMIT_RATE="0")
    request = request_bytes("POST", "/v1/jobs", {"command": "true"},
                            host=f"127.0.0.1:{server.port}",
                            headers={"Authorization": f"Bearer {server.token}"})
    try:
        with server.client() as client:
            start = time.perf_counter()
            run_load("127.0.0.1", server.port, [request], n, concurrency)
            while True:
                page = client.get("/v1/jobs", params={"limit": 1, "state": [
                    "PENDING", "RUNNING"]}).json()
                if not page["jobs"]:
                    return time.perf_counter() - start
                time.sleep(0.02)
    finally:
        server.stop()


def latency(k: int, home: Path) -> tuple[list[float], list[float]]:
    server = ServerProcess(home).start(JOBGATE_ENGINE_INTERVAL="0.5")
    to_running, to_final = [], []
    try:
        with server.client() as client:
            for _ in range(k):
                job = client.post("/v1/jobs", json={"command": "true"}).json()
                while not client.get(f"/v1/jobs/{job['id']}").json()["final"]:
                    time.sleep(0.005)
                events = client.get(f"/v1/jobs/{job['id']}/events").json()["events"]
                final = client.get(f"/v1/jobs/{job['id']}").json()
                at = {e["to_state"]: _ts(e["at"]) for e in events}
                to_running.append(at["RUNNING"] - _ts(final["submit_time"]))
                to_final.append(at[final["state"]] - _ts(final["end_time"]))
    finally:
        server.stop()
    return to_running, to_final


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=2000)
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--latency-jobs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16,
                        help="connections submitting at once in the HTTP row")
    parser.add_argument("--batch", type=int, default=100,
                        help="jobs per submit_many call in the batched row")
    parser.add_argument("--dir", default=None,
                        help="where the ceiling's files, the jobs' homes and their files go "
                             "(default: the system's temporary directory); /dev/shm, a "
                             "tmpfs, leaves the disk's file system out of every row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        create = create_cost(root / "creates")
        base = ceiling(args.n, root / "ceiling")
        rows = [("spawn ceiling (sh -c true, 2 threads)", base)]
        rows.append(("JobService.submit -> all final", through_service(args.n, root / "svc")))
        rows.append((f"JobService.submit_many({args.batch}) -> all final",
                     through_service(args.n, root / "svc-batch", args.batch)))
        if args.http:
            rows.append((f"POST /v1/jobs (c{args.concurrency}) -> all final",
                         through_http(args.n, root / "http", args.concurrency)))
        to_running, to_final = latency(args.latency_jobs, root / "lat")
    print(f"file create on this file system now: {create * 1e6:.0f} us of CPU")
    print(f"{'what':<40}{'jobs':>6}{'seconds':>9}{'jobs/s':>8}{'of ceiling':>12}")
    for what, seconds in rows:
        print(f"{what:<40}{args.n:>6}{seconds:>9.2f}{args.n / seconds:>8.0f}"
              f"{base / seconds:>11.0%}")
    for what, values in (("submit -> RUNNING", to_running), ("exit -> final visible", to_final)):
        ms = sorted(v * 1000 for v in values)
        print(f"{what:<28} p50 {statistics.median(ms):7.1f} ms   "
              f"p90 {ms[int(len(ms) * 0.9) - 1]:7.1f} ms   ({len(ms)} jobs, idle)")


if __name__ == "__main__":
    main()
