"""The real single-node Slurm cluster of the tests (scripts/slurm.sh), started once."""

from __future__ import annotations

import fcntl
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm.sh"
# Shared by the tests on the real Slurm cluster, exclusive for its outage drills
# (tests/conftest.py _slurm_turn), across the test workers.
SLURM_TURNS = Path(tempfile.gettempdir()) / "jobgate-tests-slurm.lock"


@contextmanager
def slurm_turn(exclusive: bool = False) -> Iterator[None]:
    with SLURM_TURNS.open("a") as turns:
        fcntl.flock(turns, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # released when the file closes


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Start the cluster (installing Slurm's Debian packages the first time; under
    a second when it is already up). Returns its name."""
    with slurm_turn(exclusive=True):  # one start at a time, and none during a drill
        done = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True,
                              timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/slurm.sh up failed:\n{done.stdout}\n{done.stderr}")
    return "test"
