"""The local cluster holds a job to its memory. Where the machine lets the job
daemon make a memory cgroup, each job with a limit gets one and the kernel stops
the job at the limit; elsewhere, or with `memory_cgroup = false`, the daemon
samples the RSS of the job's processes and kills it once past the limit."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from backend_harness import Harness

from jobgate.backends.local import LocalBackend
from jobgate.backends.local.daemon import MemoryCgroups, cgroup_tag
from jobgate.config import ClusterConfig
from jobgate.domain.states import JobState

# 300 MiB at once, then a word: far faster than one sampling interval.
GRAB = (f"{sys.executable} -c 'import time; x = b\"x\" * (300 << 20); "
        "print(\"survived\", flush=True); time.sleep(30)'")


@contextmanager
def harness_for(tmp_path: Path, *, memory_cgroup: bool) -> Iterator[Harness]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    backend = LocalBackend(tmp_path / "home", kill_wait=1.0,
                           config=ClusterConfig(memory_cgroup=memory_cgroup))
    harness = Harness(backend, workdir)
    try:
        yield harness
    finally:
        harness.cleanup()
        backend.close()


@pytest.fixture
def machine_cgroups() -> None:
    probe = MemoryCgroups.find(f"jobgate-probe-{uuid.uuid4().hex[:8]}")
    if probe is None:
        pytest.skip("this machine lets this process make no memory cgroup")
    probe.sweep(leaving=True)


def test_in_a_cgroup_the_kernel_stops_a_job_at_its_limit(
    tmp_path: Path, machine_cgroups: None
) -> None:
    with harness_for(tmp_path, memory_cgroup=True) as harness:
        job = harness.run(command=GRAB, memory=64)
        end = harness.final(job)
        assert end.state is JobState.OUT_OF_MEMORY
        # Stopped in the middle of its allocation: sampling would let it through.
        assert Path(job.standard_output).read_text() == ""
        assert 32 * 1024 < end.data["max_rss_kib"] < 300 * 1024
        parent = MemoryCgroups.find(cgroup_tag(tmp_path / "home" / "runs"))
        assert parent is not None
        assert not (parent.parent / f"{job.id}.0").exists()  # gone with the job


def test_a_job_within_its_limit_runs_in_its_cgroup(tmp_path: Path, machine_cgroups: None
                                                   ) -> None:
    with harness_for(tmp_path, memory_cgroup=True) as harness:
        job = harness.run(command="cat /proc/self/cgroup; echo done", memory=64)
        end = harness.final(job)
        assert (end.state, end.exit_code) == (JobState.COMPLETED, 0)
        out = Path(job.standard_output).read_text()
        assert any(line.endswith(f"/{job.id}.0") for line in out.splitlines()), out
        assert out.endswith("done\n")


def test_without_a_cgroup_the_rss_is_sampled(tmp_path: Path) -> None:
    with harness_for(tmp_path, memory_cgroup=False) as harness:
        job = harness.run(command=f"cat /proc/self/cgroup; {GRAB}", memory=64)
        end = harness.final(job)
        assert end.state is JobState.OUT_OF_MEMORY
        assert end.data["max_rss_kib"] > 64 * 1024  # a sample found it past its limit
        out = Path(job.standard_output).read_text()
        assert not any(line.endswith(f"/{job.id}.0") for line in out.splitlines()), out
