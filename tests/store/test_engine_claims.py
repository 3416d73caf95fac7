"""The engine decides from a read without the write lock, and writes only to
jobs still as it read them (service/engine.py `_claim_window`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest

from jobgate.backends.base import Selection
from jobgate.config import Settings
from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway

ADMIN = Principal("admin", is_admin=True)


@pytest.fixture
def gateway(tmp_path: Path, db_url: str) -> Iterator[Gateway]:
    """A gateway whose engine runs only the rounds a test asks for."""
    gateway = Gateway(Settings.load(home=tmp_path / "home", database_url=db_url,
                                    run_engine=False, kill_wait=1.0))
    gateway.start()
    assert gateway.engine.hold_lease()
    try:
        yield gateway
    finally:
        gateway.stop()


def meddle_during_selection(gateway: Gateway, meddle: Callable[[], object]) -> None:
    """Run `meddle()` once, between the round's read and its write."""
    backend = gateway.backends["local"]
    select = backend.select

    def select_and_meddle(pending: Sequence[JobRecord], active: Sequence[JobRecord],
                          now: datetime) -> Selection:
        selection = select(pending, active, now)
        meddle()
        backend.select = select  # type: ignore[method-assign]
        return selection

    backend.select = select_and_meddle  # type: ignore[method-assign]


def test_a_job_held_while_the_round_decides_is_not_started(gateway: Gateway) -> None:
    job = gateway.jobs.submit(JobSpec.parse({"command": "true"}), ADMIN)
    meddle_during_selection(gateway, lambda: gateway.control.hold(job.id, ADMIN))
    gateway.engine.run_once()  # the round chose the job, then found it held
    held = gateway.jobs.get(job.id, ADMIN)
    assert (held.state, held.held, held.state_reason) == (
        JobState.PENDING, True, "JobHeldUser")
    gateway.control.release(job.id, ADMIN)
    gateway.engine.run_once()
    assert gateway.jobs.get(job.id, ADMIN).state in (JobState.RUNNING, JobState.COMPLETED)


def test_a_job_cancelled_while_the_round_decides_stays_cancelled(gateway: Gateway) -> None:
    first = gateway.jobs.submit(JobSpec.parse({"command": "true"}), ADMIN)
    second = gateway.jobs.submit(JobSpec.parse({"command": "true"}), ADMIN)
    meddle_during_selection(gateway, lambda: gateway.jobs.cancel(first.id, ADMIN))
    gateway.engine.run_once()
    cancelled = gateway.jobs.get(first.id, ADMIN)
    assert cancelled.state is JobState.CANCELLED and cancelled.start_time is None
    # The other job of the round, unchanged, started.
    assert gateway.jobs.get(second.id, ADMIN).state in (JobState.RUNNING, JobState.COMPLETED)
