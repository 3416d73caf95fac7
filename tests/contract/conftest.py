"""Fixtures of the backend contract suite: every test runs against each backend
(the local cluster, and a real Slurm cluster started by scripts/slurm.sh, through
its commands and through slurmrestd), unless it names the one it is about with
`@pytest.mark.parametrize("kind", [...])`."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backend_harness import Harness

from jobgate.backends.base import Backend
from jobgate.backends.local import LocalBackend
from jobgate.backends.slurm import SlurmBackend
from jobgate.config import ClusterConfig
from slurm_cluster import slurm_cluster
from slurm_rest import RestCluster, rest_shared_dir, slurm_rest

__all__ = ["rest_shared_dir", "slurm_cluster", "slurm_rest"]

# How much longer Slurm's waits are: its scheduler starts jobs on passes about a
# second apart, and time limits are enforced by a check every ~30 s on top of
# limits that count whole minutes.
PATIENCE = {"local": 1.0, "slurm": 6.0, "slurm-rest": 6.0}


@pytest.fixture(params=["local", "slurm", "slurm-rest"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def workdir(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> Path:
    if kind == "slurm-rest":  # jobs run as slurmrestd's user, who must write there
        shared: Path = request.getfixturevalue("rest_shared_dir")
        path = shared / "work"
        path.mkdir()
        shutil.chown(path, shared.owner(), shared.group())
        return path
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def make_backend(kind: str, home: Path, request: pytest.FixtureRequest
                 ) -> Callable[[], Backend]:
    """A new backend of the kind under test over the same home (a restarted gateway)."""
    if kind == "slurm":
        request.getfixturevalue("slurm_cluster")
    config = ClusterConfig(backend="slurm")
    if kind == "slurm-rest":
        rest: RestCluster = request.getfixturevalue("slurm_rest")
        shared: Path = request.getfixturevalue("rest_shared_dir")
        config = ClusterConfig.model_validate(rest.settings(shared / "jobs"))

    def make() -> Backend:
        if kind == "local":
            return LocalBackend(home, kill_wait=1.0)
        return SlurmBackend(home, cluster="slurm", config=config)

    return make


@pytest.fixture
def backend(make_backend: Callable[[], Backend]) -> Iterator[Backend]:
    backend = make_backend()
    yield backend
    backend.close()


@pytest.fixture
def harness(backend: Backend, workdir: Path, kind: str) -> Iterator[Harness]:
    harness = Harness(backend, workdir, patience=PATIENCE[kind])
    yield harness
    harness.cleanup()
