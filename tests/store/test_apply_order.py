"""Several changes of one job in one batch land in their order (a backend may
report PENDING -> RUNNING -> COMPLETED at once), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from jobgate.domain.states import JobState
from jobgate.store import make_engine, make_session_factory, migrate
from jobgate.store.jobs import Change, JobRepository
from jobgate.store.tables import JobRow

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = make_engine(db_url)
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


def add_job(session: Session) -> int:
    row = JobRow(
        name="job", state="PENDING", state_reason=None, held=False, user_name="ana",
        cluster="slurm", partition="debug", account=None, num_nodes=1, ntasks=1,
        cpus_per_task=1, memory=None, memory_per_cpu=None, gpus=0, time_limit=None,
        priority=0, comment=None, working_directory="/w", standard_output="/w/o",
        standard_error="/w/e", submit_time=T0, updated_at=T0, requeue_count=0,
        spec={"command": "true"})
    return JobRepository(session).add(row, [], T0, "submitted").id


def test_the_changes_of_one_job_apply_in_order(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        ids = [add_job(session) for _ in range(3)]
    first, second, third = ids
    pending, running, done = JobState.PENDING, JobState.RUNNING, JobState.COMPLETED
    changes = [
        # A column set first seen with the last change of `first`...
        Change(second, {"end_time": T0, "exit_code": 0}, (pending, done)),
        Change(first, {"native_id": "7", "state_reason": "Priority"}),
        Change(first, {"start_time": T0}, (pending, running)),
        Change(first, {"end_time": T0, "exit_code": 0}, (running, done)),
        Change(third, {"native_id": "9", "state_reason": "Resources"}),
    ]
    with sessions.begin() as session:
        JobRepository(session).apply(changes, T0)
    with sessions() as session:
        repo = JobRepository(session)
        rows = {job_id: repo.get(job_id) for job_id in ids}
        assert [(r.state, r.state_reason, r.native_id) for r in rows.values() if r] == [
            ("COMPLETED", None, "7"), ("COMPLETED", None, None), ("PENDING", "Resources", "9")]
        assert [e.to_state for e in repo.events(first)] == [pending, running, done]
