"""The real single-node Slurm cluster of the tests (scripts/slurm.sh), started once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm.sh"


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Start the cluster (installing Slurm's Debian packages the first time; under
    a second when it is already up). Returns its name."""
    done = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True,
                          timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/slurm.sh up failed:\n{done.stdout}\n{done.stderr}")
    return "test"


def without_completing(states: list[str]) -> list[str]:
    """A job's states as the gateway saw them, less COMPLETING: Slurm shows it
    while the node's epilog runs, and a poll sees it only when it lands in that
    moment. Where it is seen, it must come just before the final state."""
    if "COMPLETING" in states:
        assert states.index("COMPLETING") == len(states) - 2, states
    return [state for state in states if state != "COMPLETING"]
