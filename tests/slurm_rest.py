"""The test cluster's slurmrestd (scripts/slurm.sh starts it with JWT auth): how
to reach it, and directories its user can write.

Jobs submitted through slurmrestd run as its token's user (`slurmtest`), not as
root: their working and job directories must be writable by that user, and
pytest's own tmp_path (under a 0700 root directory) is not even readable. Each
test gets a directory under SHARED_ROOT (0755) owned by that user instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slurm_cluster import slurm_cluster

__all__ = ["RestCluster", "rest_shared_dir", "slurm_cluster", "slurm_rest"]

ENV_FILE = Path("/run/slurm/env")
SHARED_ROOT = Path(tempfile.gettempdir()) / "jobgate-rest-tests"


@dataclass(frozen=True)
class RestCluster:
    url: str
    user: str

    @property
    def token_command(self) -> str:
        # root may make tokens for any user; 10 minutes, renewed by jobgate.
        return f"scontrol token username={self.user} lifespan=600"

    def settings(self, job_dir: Path, **extra: Any) -> dict[str, Any]:
        """A cluster's settings (jobgate.toml's [clusters.x]) for this slurmrestd."""
        return {"backend": "slurm", "transport": "rest", "rest_url": self.url,
                "rest_user": self.user, "rest_token_command": self.token_command,
                "job_dir": str(job_dir), **extra}


def read_env() -> dict[str, str]:
    values = {}
    for line in ENV_FILE.read_text().splitlines():
        key, eq, value = line.partition("=")
        if eq and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="session")
def slurm_rest(slurm_cluster: str) -> RestCluster:
    env = read_env()
    return RestCluster(url=env["SLURMRESTD_URL"], user=env["SLURM_TEST_USER"])


@pytest.fixture
def rest_shared_dir(slurm_rest: RestCluster) -> Iterator[Path]:
    """An empty directory owned by the REST user (removed afterwards)."""
    SHARED_ROOT.mkdir(mode=0o755, exist_ok=True)
    os.chmod(SHARED_ROOT, 0o755)
    path = Path(tempfile.mkdtemp(dir=SHARED_ROOT))
    os.chmod(path, 0o755)
    entry = pwd.getpwnam(slurm_rest.user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)
