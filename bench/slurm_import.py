"""What importing outside Slurm jobs costs (cluster option import_jobs).

    .venv/bin/python bench/slurm_import.py [--jobs 1000,10000] [--outside 10,300]
                                           [--window 30]

1. The importer alone (no Slurm): a cycle over N outside jobs of squeue, first
   (every job new: N records) and then unchanged (no record), in us per job.
   The jobs are copies of the real squeue sample (tests/fixtures/slurm/).
2. A gateway in front of the real test cluster (needs root; scripts/slurm.sh up
   is run first), one of its own jobs tracked (sleeping), and A then B held
   outside jobs sbatch'ed beside it: the poller's own squeue and sacct calls a
   minute, importing off and on, and the records ingested. Calls a minute must
   not grow with the number of outside jobs, nor with importing on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from jobgate.backends.slurm.importer import Importer
from jobgate.backends.slurm.parsing import SlurmJob, parse_squeue
from jobgate.backends.slurm.poller import Poller
from jobgate.config import Settings
from jobgate.domain.spec import JobSpec
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway
from jobgate.store.tables import JobRow

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "fixtures" / "slurm" / "squeue-22.05.json"
ADMIN = Principal("admin", is_admin=True)


def synthetic(n: int) -> list[SlurmJob]:
    samples = parse_squeue(SAMPLE.read_text())
    jobs = []
    for i in range(n):
        job = samples[i % len(samples)]
        raw = {**job.raw, "job_id": 100_000 + i}
        jobs.append(replace(job, native_id=str(100_000 + i), raw=raw))
    return jobs


def importer_cost(n: int) -> tuple[float, float, int]:
    """(us per job, first cycle; us per job, unchanged cycle; records sent)."""
    jobs = synthetic(n)
    sent: list[list[dict[str, Any]]] = []
    importer = Importer("hpc", "bench", sent.append)
    now = datetime.now(UTC)
    start = time.perf_counter()
    importer.observe(jobs, now, 1.0)
    importer.flush()
    first = time.perf_counter() - start
    runs = 5
    start = time.perf_counter()
    for taken in range(2, 2 + runs):
        importer.observe(jobs, now, float(taken))
        importer.flush()
    unchanged = (time.perf_counter() - start) / runs
    return first / n * 1e6, unchanged / n * 1e6, sum(len(b) for b in sent)


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def held_outside_jobs(k: int, name: str) -> list[str]:
    def one(_: int) -> str:
        return sh("sbatch", "--parsable", "--hold", "-J", name, "-o", "/dev/null",
                  "-D", "/tmp", "--wrap", "true").strip()
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(k)))


def calls_per_minute(import_jobs: bool, outside: int, window: float, home: Path
                     ) -> tuple[float, float, int]:
    """(squeue a minute, sacct a minute, outside jobs in the ledger)."""
    name = f"outside-{uuid.uuid4().hex[:6]}"
    ids = held_outside_jobs(outside, name)
    ours_native: str | None = None
    gateway = Gateway(Settings.load(
        home=home, engine_interval=0.05, default_cluster="slurm",
        clusters={"slurm": {"backend": "slurm", "job_dir": str(home / "shared"),
                            "import_jobs": import_jobs}}))
    gateway.start()
    ours = gateway.jobs.submit(JobSpec.parse({"command": "sleep 900", "stdout": "/dev/null",
                                              "stderr": "/dev/null"}), ADMIN)
    try:
        time.sleep(5)  # handed over, first imports settled
        poller: Poller = gateway.backends["slurm"].poller  # type: ignore[attr-defined]
        before = dict(poller.calls)
        time.sleep(window)
        after = dict(poller.calls)
        with gateway.sessions() as session:
            imported = session.scalar(select(func.count()).select_from(JobRow).where(
                JobRow.source == "registry", JobRow.name == name)) or 0
            ours_native = session.scalar(select(JobRow.native_id).where(JobRow.id == ours.id))
        return ((after["squeue"] - before["squeue"]) * 60 / window,
                (after["sacct"] - before["sacct"]) * 60 / window, imported)
    finally:
        gateway.stop()
        for chunk in range(0, len(ids), 200):
            subprocess.run(["scancel", *ids[chunk:chunk + 200]], check=False)
        if ours_native:
            subprocess.run(["scancel", ours_native], check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", default="1000,10000")
    parser.add_argument("--outside", default="10,300")
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--no-slurm", action="store_true")
    args = parser.parse_args()

    print("importer, no Slurm        first cycle   unchanged cycle   records")
    for n in (int(x) for x in args.jobs.split(",")):
        first, unchanged, records = importer_cost(n)
        print(f"  {n:>6} outside jobs   {first:7.1f} us/job   {unchanged:7.1f} us/job"
              f"   {records:>7}")
    if args.no_slurm:
        return
    subprocess.run(["bash", str(ROOT / "scripts" / "slurm.sh"), "up"], check=True,
                   capture_output=True)
    print(f"\npoller's own calls a minute ({args.window:g} s window, one job tracked)")
    print("  import_jobs  outside   squeue/min  sacct/min  imported")
    for import_jobs in (False, True):
        for outside in (int(x) for x in args.outside.split(",")):
            with tempfile.TemporaryDirectory(prefix="jobgate-import-",
                                             ignore_cleanup_errors=True) as tmp:
                squeue, sacct, imported = calls_per_minute(
                    import_jobs, outside, args.window, Path(tmp))
            print(f"  {import_jobs!s:<11} {outside:>7}   {squeue:>10.1f}  {sacct:>9.1f}"
                  f"  {imported:>8}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
