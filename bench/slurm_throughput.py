"""jobgate in front of a real Slurm, beside raw sbatch in the same run.

    .venv/bin/python bench/slurm_throughput.py [N] [--rounds R] [--lag-jobs K]
                                               [--rpc-window S] [--tracked A,B]

Needs root and the test cluster (scripts/slurm.sh up is run first).

Throughput is measured in R rounds (default 3), the baseline first in one round
and jobgate first in the next: on a 2-core machine that runs slurmctld, slurmd,
the database and the jobs too, one pair of runs varies by tens of percent, and
whichever runs second meets the jobs the first left in slurmctld's memory. Each
round prints its figures; the ratios are the medians of the rounds'.

- Baseline: N `sbatch --parsable --wrap true` in a loop; submit rate, and
  end-to-end rate until none of them is pending, running or completing.
- jobgate: N jobs running `true` submitted through JobService (in process, with
  the engine and the Slurm backend); "submit" ends when every job has been handed
  to Slurm (has its Slurm id), end-to-end when every one is final in the ledger.
- Status lag: K jobs whose last act is to write a precise timestamp (their ends
  spread over K/10 s); the lag is from there to the commit of the job's final
  state in jobgate.
- slurmctld RPCs per minute (sdiag's counts by message type, less sdiag's own),
  over a window with A jobs tracked and with B jobs tracked (jobs that sleep).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from jobgate.config import Settings
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import FINAL_STATES
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway
from jobgate.store.tables import JobEventRow, JobRow

ROOT = Path(__file__).resolve().parents[1]
ADMIN = Principal("admin", is_admin=True)
ACTIVE = "PD,R,CG,S,CF"


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def active_named(name: str) -> int:
    return len(sh("squeue", "-h", "-n", name, "-t", ACTIVE, "-o", "%i").split())


def raw_sbatch(n: int, workdir: Path) -> tuple[float, float]:
    name = f"raw-{uuid.uuid4().hex[:6]}"
    start = time.perf_counter()
    for _ in range(n):
        sh("sbatch", "-Q", "--parsable", "-J", name, "-o", "/dev/null", "-D", str(workdir),
           "--wrap", "true")
    submitted = time.perf_counter() - start
    while active_named(name):
        time.sleep(0.25)
    return submitted, time.perf_counter() - start


def gateway_for(home: Path, shared: Path) -> Gateway:
    gateway = Gateway(Settings.load(
        home=home, engine_interval=0.05, default_cluster="slurm",
        clusters={"slurm": {"backend": "slurm", "job_dir": str(shared)}}))
    gateway.start()
    return gateway


def count(gateway: Gateway, *where: object) -> int:
    with gateway.sessions() as session:
        return session.scalar(select(func.count()).select_from(JobRow).where(*where)) or 0


def through_jobgate(n: int, home: Path, shared: Path) -> tuple[float, float]:
    gateway = gateway_for(home, shared)
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


def status_lag(k: int, home: Path, shared: Path) -> list[float]:
    marks = shared / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    gateway = gateway_for(home, shared)
    try:
        # Ends spread over a few seconds, so that the poller's phase is sampled.
        ids = [gateway.jobs.submit(JobSpec.parse({
            "command": f"sleep {1 + i * 0.1:.1f}; date +%s.%N > {marks}/$JOBGATE_JOB_ID"}),
            ADMIN).id for i in range(k)]
        finals = [s.value for s in FINAL_STATES]
        while count(gateway, JobRow.id.in_(ids), JobRow.state.in_(finals)) < k:
            time.sleep(0.05)
        with gateway.sessions() as session:
            ended = dict(session.execute(
                select(JobEventRow.job_id, JobEventRow.at).where(
                    JobEventRow.job_id.in_(ids), JobEventRow.to_state.in_(finals))).all())
        return [ended[i].timestamp() - float((marks / str(i)).read_text()) for i in ids]
    finally:
        gateway.stop()


def sdiag_counts() -> dict[str, int]:
    """RPCs by message type since slurmctld started (or sdiag -r)."""
    counts = {}
    section = False
    for line in sh("sdiag").splitlines():
        if line.startswith("Remote Procedure Call statistics by message type"):
            section = True
            continue
        if section and line.startswith("Remote Procedure Call statistics by user"):
            break
        found = re.match(r"\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)", line)
        if section and found:
            counts[found.group(1)] = int(found.group(2))
    return counts


def rpcs_per_minute(tracked: int, window: float, home: Path, shared: Path
                    ) -> tuple[float, float]:
    """(all RPCs, job-info RPCs) a minute with `tracked` sleeping jobs tracked."""
    gateway = gateway_for(home, shared)
    try:
        spec = JobSpec.parse({"command": "sleep 900", "stdout": "/dev/null",
                              "stderr": "/dev/null"})
        for _ in range(tracked):
            gateway.jobs.submit(spec, ADMIN)
        while count(gateway, JobRow.native_id.is_not(None)) < tracked:
            time.sleep(0.1)
        time.sleep(5)  # let the first wave of reports settle
        before = sdiag_counts()
        time.sleep(window)
        after = sdiag_counts()
        own = {"REQUEST_STATS_INFO"}  # sdiag itself
        total = sum(after[k] - before.get(k, 0) for k in after if k not in own)
        job_info = sum(after.get(kind, 0) - before.get(kind, 0)
                       for kind in ("REQUEST_JOB_INFO", "REQUEST_JOB_USER_INFO"))
        return total * 60 / window, job_info * 60 / window
    finally:
        with gateway.sessions() as session:
            native = list(session.scalars(select(JobRow.native_id).where(
                JobRow.native_id.is_not(None))))
        for chunk in range(0, len(native), 200):
            subprocess.run(["scancel", *native[chunk:chunk + 200]], check=False)
        gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lag-jobs", type=int, default=50)
    parser.add_argument("--rpc-window", type=float, default=30.0)
    parser.add_argument("--tracked", default="10,1000")
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "scripts" / "slurm.sh"), "up"], check=True,
                   stdout=subprocess.DEVNULL)
    n = args.n
    print(f"{datetime.now():%Y-%m-%d %H:%M} Slurm {sh('sinfo', '-V').split()[-1]}, N={n}")
    print(f"{'round':<8}{'sbatch submit/s':>16}{'jobgate submit/s':>18}{'ratio':>7}"
          f"{'sbatch e2e/s':>14}{'jobgate e2e/s':>15}{'ratio':>7}")
    submit_ratios, e2e_ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for index in range(args.rounds):
            here = root / f"round{index}"
            (here / "raw").mkdir(parents=True)
            if index % 2 == 0:
                raw_submit, raw_all = raw_sbatch(n, here / "raw")
                gate_submit, gate_all = through_jobgate(n, here / "gw", here / "shared")
            else:
                gate_submit, gate_all = through_jobgate(n, here / "gw", here / "shared")
                raw_submit, raw_all = raw_sbatch(n, here / "raw")
            submit_ratios.append(raw_submit / gate_submit)
            e2e_ratios.append(raw_all / gate_all)
            print(f"{index + 1:<8}{n / raw_submit:>16.1f}{n / gate_submit:>18.1f}"
                  f"{submit_ratios[-1]:>7.2f}{n / raw_all:>14.1f}{n / gate_all:>15.1f}"
                  f"{e2e_ratios[-1]:>7.2f}", flush=True)
        lags = sorted(status_lag(args.lag_jobs, root / "lag", root / "shared"))
        rpcs = [(t, *rpcs_per_minute(t, args.rpc_window, root / f"rpc{t}", root / "shared"))
                for t in (int(x) for x in args.tracked.split(","))]
    print(f"ratio jobgate / baseline, median of {args.rounds} rounds: submit "
          f"{statistics.median(submit_ratios):.2f}, end-to-end "
          f"{statistics.median(e2e_ratios):.2f}")
    print(f"status lag, job's end -> final in jobgate ({len(lags)} jobs): "
          f"p50 {statistics.median(lags):.2f} s  p90 {lags[int(len(lags) * 0.9) - 1]:.2f} s  "
          f"max {lags[-1]:.2f} s")
    for tracked, total, job_info in rpcs:
        print(f"slurmctld RPCs/min with {tracked:>5} jobs tracked: {total:7.1f} "
              f"(job info: {job_info:.1f})")


if __name__ == "__main__":
    sys.exit(main())
