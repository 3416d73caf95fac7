"""The REST transport (slurmrestd) beside the CLI one, in the same run.

    .venv/bin/python bench/slurm_rest.py [N] [--polls P]

Needs root and the test cluster (scripts/slurm.sh up is run first).

- N jobs running `true` submitted through JobService (in process, with the
  engine and the Slurm backend), once with transport "cli" and once with "rest";
  "submit" ends when every job has its Slurm id, end-to-end when every one is
  final in the ledger. The ratio is rest / cli.
- One poll of the whole queue, as the poller makes it each round: `squeue --json`
  and GET /slurm/v0.0.38/jobs (with the token already fetched), median of P,
  with whatever slurmctld holds at that moment (the N*2 jobs above at least).
"""

from __future__ import annotations

import argparse
import os
import pwd
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from jobgate.backends.slurm.rest import RestTransport
from jobgate.backends.slurm.transport import CliTransport
from jobgate.config import ClusterConfig, Settings
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import FINAL_STATES
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway
from jobgate.store.tables import JobRow

ROOT = Path(__file__).resolve().parents[1]
ADMIN = Principal("admin", is_admin=True)


def rest_settings() -> dict[str, Any]:
    env = dict(line.split("=", 1) for line in Path("/run/slurm/env").read_text().splitlines()
               if "=" in line and not line.startswith("#"))
    user = env["SLURM_TEST_USER"]
    return {"transport": "rest", "rest_url": env["SLURMRESTD_URL"], "rest_user": user,
            "rest_token_command": f"scontrol token username={user} lifespan=3600"}


def count(gateway: Gateway, *where: object) -> int:
    with gateway.sessions() as session:
        return session.scalar(select(func.count()).select_from(JobRow).where(*where)) or 0


def through_jobgate(n: int, home: Path, cluster: dict[str, Any]) -> tuple[float, float]:
    gateway = Gateway(Settings.load(home=home, engine_interval=0.05, default_cluster="slurm",
                                    clusters={"slurm": {"backend": "slurm", **cluster}}))
    gateway.start()
    try:
        spec = JobSpec.parse({"command": "true", "stdout": "/dev/null", "stderr": "/dev/null"})
        start = time.perf_counter()
        for _ in range(n):
            gateway.jobs.submit(spec, ADMIN)
        finals = [s.value for s in FINAL_STATES]
        handed = None
        while True:
            if handed is None and count(gateway, JobRow.native_id.is_not(None)) >= n:
                handed = time.perf_counter() - start
            if count(gateway, JobRow.state.in_(finals)) >= n:
                return handed or time.perf_counter() - start, time.perf_counter() - start
            time.sleep(0.05)
    finally:
        gateway.stop()


def poll_times(polls: int, cluster: dict[str, Any]) -> tuple[float, float, int]:
    cli = CliTransport()
    rest = RestTransport.from_config(ClusterConfig.model_validate(
        {"backend": "slurm", **cluster}))
    try:
        jobs = len(rest.queue())  # also fetches the token
        cli_times, rest_times = [], []
        for _ in range(polls):
            start = time.perf_counter()
            cli.queue("jobgate:")
            cli_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            rest.queue("jobgate:")
            rest_times.append(time.perf_counter() - start)
        return statistics.median(cli_times), statistics.median(rest_times), jobs
    finally:
        rest.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=200)
    parser.add_argument("--polls", type=int, default=10)
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "scripts" / "slurm.sh"), "up"], check=True,
                   stdout=subprocess.DEVNULL)
    rest = rest_settings()
    user = pwd.getpwnam(rest["rest_user"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)  # REST jobs run as rest_user: it must reach job_dir
        shared = root / "shared"
        shared.mkdir(mode=0o755)
        os.chown(shared, user.pw_uid, user.pw_gid)
        results = {
            "cli": through_jobgate(args.n, root / "cli", {"job_dir": str(shared / "cli")}),
            "rest": through_jobgate(args.n, root / "rest",
                                    {"job_dir": str(shared / "rest"), **rest}),
        }
        cli_poll, rest_poll, jobs = poll_times(args.polls, rest)
    n = args.n
    print(f"{datetime.now():%Y-%m-%d %H:%M} N={n}")
    print(f"{'what':<34}{'submit/s':>10}{'end-to-end/s':>14}")
    for name, (submitted, ended) in results.items():
        print(f"{'jobgate, transport ' + name:<34}{n / submitted:>10.1f}{n / ended:>14.1f}")
    (cli_submit, cli_all), (rest_submit, rest_all) = results["cli"], results["rest"]
    print(f"{'ratio rest / cli':<34}{cli_submit / rest_submit:>10.2f}{cli_all / rest_all:>14.2f}")
    print(f"one poll of {jobs} jobs: squeue --json {cli_poll * 1000:.0f} ms, "
          f"GET /jobs {rest_poll * 1000:.0f} ms (median of {args.polls})")


if __name__ == "__main__":
    sys.exit(main())
