"""Fixtures of the backend contract suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from backend_harness import Harness

from jobgate.backends.local import LocalBackend


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def backend(home: Path) -> Iterator[LocalBackend]:
    backend = LocalBackend(home, kill_wait=1.0)
    yield backend
    backend.close()


@pytest.fixture
def harness(backend: LocalBackend, workdir: Path) -> Harness:
    return Harness(backend, workdir)
