"""One request's latency on two jobgate source trees, asked in turns.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/ab_requests.py /tmp/before . [--request page] [--db sqlite]
                                          [--rounds 30] [--per-round 100]

Each tree (a directory holding `src/jobgate`) is served by its own `jobgate
serve` (engine off, a fresh store: SQLite, or a new PostgreSQL database), and
the same request goes to one, then the other, a round of `--per-round` at a
time, the first tree first in every other round. The machine's swings, which
move the whole-run benchmarks by more than a change of a tenth of a
millisecond, thus fall on both trees alike. One client connection per tree,
one request at a time: the figure is a request's own latency, not throughput.

Requests: `page` (GET /v1/jobs?limit=100 over 100 held jobs), `get` (GET
/v1/jobs/{id}), `submit` (POST /v1/jobs of a held job). Prints p50, mean and
p90 per tree and the ratio of the second's to the first's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from registry_ingest import database

from server_process import ServerProcess

HELD_JOB = {"script": "#!/bin/sh\ntrue\n", "hold": True}


def serve(tree: Path, home: Path, database_url: str | None) -> ServerProcess:
    """`jobgate serve` of `tree`'s source, not the installed one."""
    env = {"JOBGATE_RUN_ENGINE": "false", "JOBGATE_SUBMIT_RATE": "0",
           "PYTHONPATH": str(tree / "src")}
    if database_url:
        env["JOBGATE_DATABASE_URL"] = database_url
    return ServerProcess(home).start(**env)


def ask(client: httpx.Client, request: str, job_id: int) -> float:
    """Seconds for one request, whose answer must be a success."""
    start = time.perf_counter()
    if request == "submit":
        answer = client.post("/v1/jobs", json=HELD_JOB)
    elif request == "get":
        answer = client.get(f"/v1/jobs/{job_id}")
    else:
        answer = client.get("/v1/jobs", params={"limit": 100})
    took = time.perf_counter() - start
    if answer.status_code not in (200, 201):
        raise SystemExit(f"{request}: {answer.status_code} {answer.text[:300]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, type=Path, help="two source trees: before, after")
    parser.add_argument("--request", choices=("page", "get", "submit"), default="page")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=100)
    args = parser.parse_args()
    for tree in args.trees:
        if not (tree / "src" / "jobgate").is_dir():
            parser.error(f"{tree} holds no src/jobgate")
    times: list[list[float]] = [[], []]
    with ExitStack() as stack:
        clients = []
        for number, tree in enumerate(args.trees):
            url = stack.enter_context(database()) if args.db == "postgresql" else None
            home = Path(stack.enter_context(tempfile.TemporaryDirectory())) / f"home{number}"
            server = serve(tree.resolve(), home, url)
            stack.callback(server.stop)
            client = stack.enter_context(server.client())
            for _ in range(100):
                client.post("/v1/jobs", json=HELD_JOB).raise_for_status()
            clients.append(client)
        for _ in range(args.per_round):  # warm both: caches, pools, the first compiles
            for client in clients:
                ask(client, args.request, 1)
        for round_number in range(args.rounds):
            for which in (round_number % 2, 1 - round_number % 2):
                times[which] += [ask(clients[which], args.request, 1 + index % 100)
                                 for index in range(args.per_round)]
    print(f"{args.request} on {args.db}, {args.rounds} rounds of {args.per_round} in turns "
          f"(ms)")
    print(f"{'tree':<40}{'p50':>8}{'mean':>8}{'p90':>8}")
    p50s = []
    for tree, took in zip(args.trees, times, strict=True):
        took.sort()
        p50s.append(took[len(took) // 2])
        print(f"{str(tree)[:39]:<40}{p50s[-1] * 1e3:>8.3f}{statistics.mean(took) * 1e3:>8.3f}"
              f"{took[int(len(took) * 0.9)] * 1e3:>8.3f}")
    print(f"p50 of the second over the first: {p50s[1] / p50s[0]:.2f}")


if __name__ == "__main__":
    os.environ.pop("PYTHONPATH", None)  # each server gets its own tree's
    main()
