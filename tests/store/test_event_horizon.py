"""Readers of the event log never step over an event that commits late (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from jobgate.domain.states import JobState
from jobgate.store import event_horizon, make_engine, make_session_factory, migrate
from jobgate.store.jobs import JobRepository
from jobgate.store.tables import JobRow

# Only PostgreSQL lets two writers hold seqs at once; SQLite commits them in order.
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = make_engine(db_url)
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


def a_job(sessions: sessionmaker[Session]) -> int:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        row = JobRow(name="j", state="PENDING", held=False, user_name="ana", cluster="local",
                     partition="normal", num_nodes=1, ntasks=1, cpus_per_task=1, gpus=0,
                     priority=0, working_directory="/w", standard_output="/w/o",
                     standard_error="/w/e", submit_time=now, updated_at=now,
                     requeue_count=0, spec={"command": "true"})
        return JobRepository(session).add(row, [], now, "submitted").id


def event(session: Session, job_id: int, reason: str) -> None:
    JobRepository(session).add_event(job_id, datetime.now(UTC), JobState.PENDING,
                                     JobState.PENDING, reason, {})
    session.flush()  # takes its seq now, as a real transaction does


def reasons(sessions: sessionmaker[Session], after: int) -> list[str | None]:
    with sessions() as session:
        return [e.reason for e in JobRepository(session).events_after(after, limit=100)]


def test_an_event_committed_after_a_later_one_is_still_read(
    sessions: sessionmaker[Session],
) -> None:
    job_id = a_job(sessions)
    with sessions() as session:
        after = max(e.seq for e in JobRepository(session).events_after(0, limit=100))
    slow = sessions()
    slow.begin()
    event(slow, job_id, "first")  # holds the lower seq, not committed yet
    with sessions.begin() as fast:
        event(fast, job_id, "second")
    assert reasons(sessions, after) == []  # "second" waits: "first" may still come
    slow.commit()
    slow.close()
    assert reasons(sessions, after) == ["first", "second"]


def test_a_gap_that_never_fills_is_passed_once_settled(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = a_job(sessions)
    with sessions() as session:
        after = max(e.seq for e in JobRepository(session).events_after(0, limit=100))
    lost = sessions()
    lost.begin()
    event(lost, job_id, "rolled back")
    with sessions.begin() as session:
        event(session, job_id, "kept")
    lost.rollback()
    lost.close()
    assert reasons(sessions, after) == []
    monkeypatch.setattr(event_horizon, "GAP_SETTLE", timedelta(0))
    assert reasons(sessions, after) == ["kept"]
