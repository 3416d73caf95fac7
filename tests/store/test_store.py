"""The ledger on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from jobgate.domain.states import JobState
from jobgate.errors import InvalidSpecError
from jobgate.store import make_engine, make_session_factory, migrate
from jobgate.store.db import alembic_config
from jobgate.store.jobs import JobFilter, JobRepository, decode_cursor, encode_cursor, to_record
from jobgate.store.leases import LeaseRepository
from jobgate.store.tables import Base, JobRow, TokenRow
from jobgate.store.users import UserRepository

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def new_row(**overrides: object) -> JobRow:
    values: dict[str, object] = dict(
        name="job", state="PENDING", state_reason=None, held=False, user_name="ana",
        cluster="local", partition="normal", account=None, num_nodes=1, ntasks=1,
        cpus_per_task=1, memory=None, memory_per_cpu=None, gpus=0, time_limit=None,
        priority=0, comment=None, working_directory="/w", standard_output="/w/o",
        standard_error="/w/e", submit_time=T0, updated_at=T0, requeue_count=0,
        spec={"command": "true"},
    )
    values.update(overrides)
    return JobRow(**values)


def add(sessions: sessionmaker[Session], tags: list[str] | None = None, **overrides: object) -> int:
    with sessions.begin() as session:
        row = JobRepository(session).add(new_row(**overrides), tags or [], T0, "submitted")
        return row.id


def test_migrations_match_the_tables_and_have_one_head(engine: Engine) -> None:
    heads = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    assert len(heads) == 1
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    migrate(engine)  # idempotent
    assert {"jobs", "job_events", "job_tags", "users", "tokens"} <= set(
        inspect(engine).get_table_names()
    )


def test_times_come_back_utc_aware(sessions: sessionmaker[Session]) -> None:
    job_id = add(sessions, submit_time=T0.astimezone(timezone(timedelta(hours=5))))
    with sessions() as session:
        row = JobRepository(session).get(job_id)
        assert row is not None
        assert row.submit_time.utcoffset() == timedelta(0)
        assert row.submit_time == T0  # microseconds survive too


def test_json_columns_come_back_as_written(sessions: sessionmaker[Session]) -> None:
    # Written by orjson, save what it refuses (an integer past 64 bits);
    # non-string keys become strings, as json.dumps makes them.
    allocation = {"cpus": [0, 1], "big": 2**70, "small": -(2**63), "ratio": 0.5,
                  "text": "é\u2028\n", 3: None}
    job_id = add(sessions, allocation=allocation, spec={"command": "true", "n": 2**64})
    with sessions() as session:
        row = JobRepository(session).get(job_id)
        assert row is not None
        assert row.allocation == {**{k: v for k, v in allocation.items() if k != 3}, "3": None}
        assert row.spec == {"command": "true", "n": 2**64}


def test_first_event_and_record(sessions: sessionmaker[Session]) -> None:
    job_id = add(sessions, tags=["x", "y"])
    with sessions() as session:
        repo = JobRepository(session)
        row = repo.get(job_id)
        assert row is not None
        record = to_record(row)
        events = repo.events(job_id)
    assert record.tags == ["x", "y"]
    assert record.state is JobState.PENDING
    assert [(e.from_state, e.to_state, e.reason) for e in events] == [
        (None, JobState.PENDING, "submitted")
    ]


def test_transition_is_compare_and_set(sessions: sessionmaker[Session]) -> None:
    job_id = add(sessions)
    with sessions.begin() as session:
        repo = JobRepository(session)
        assert repo.transition(job_id, JobState.PENDING, JobState.RUNNING, T0,
                               values={"start_time": T0}, data={"k": 1})
        assert not repo.transition(job_id, JobState.PENDING, JobState.CANCELLED, T0)
    with sessions() as session:
        repo = JobRepository(session)
        row = repo.get(job_id)
        assert row is not None and row.state == "RUNNING" and row.start_time == T0
        events = repo.events(job_id)
    assert [e.to_state for e in events] == [JobState.PENDING, JobState.RUNNING]
    assert events[1].data == {"k": 1}
    assert events[0].seq < events[1].seq
    with sessions() as session:
        assert [e.to_state for e in JobRepository(session).events(job_id, after_seq=events[0].seq)
                ] == [JobState.RUNNING]


def test_filters_and_cursor_pages(sessions: sessionmaker[Session]) -> None:
    ids = [
        add(sessions, tags=["a"], user_name="ana", partition="normal"),
        add(sessions, tags=["a", "b"], user_name="bob", partition="gpu"),
        add(sessions, tags=["b"], user_name="ana", partition="gpu", state="RUNNING"),
        add(sessions, user_name="ana", cluster="other"),
    ]
    with sessions() as session:
        repo = JobRepository(session)

        def page(filters: JobFilter, **kw: int) -> list[int]:
            return [r.id for r in repo.page(filters, limit=kw.pop("limit", 100), **kw)]

        assert page(JobFilter()) == ids[::-1]
        assert page(JobFilter(tag="a")) == [ids[1], ids[0]]
        assert page(JobFilter(user_name="ana", tag="b")) == [ids[2]]
        assert page(JobFilter(partition="gpu")) == [ids[2], ids[1]]
        assert page(JobFilter(states=[JobState.RUNNING])) == [ids[2]]
        assert page(JobFilter(cluster="other")) == [ids[3]]
        assert page(JobFilter(), limit=2) == [ids[3], ids[2]]
        assert page(JobFilter(), limit=2, after_id=ids[2]) == [ids[1], ids[0]]
        assert [r.id for r in repo.in_states("local", [JobState.PENDING], limit=10)] == ids[:2]


def test_queue_order_is_priority_then_age(sessions: sessionmaker[Session]) -> None:
    low = add(sessions, priority=0)
    high = add(sessions, priority=10)
    low2 = add(sessions, priority=0)
    with sessions() as session:
        rows = JobRepository(session).in_states("local", [JobState.PENDING], limit=10)
    assert [r.id for r in rows] == [high, low, low2]


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    with pytest.raises(InvalidSpecError) as err:
        decode_cursor("not-a-cursor")
    assert err.value.field == "cursor"


def test_tokens_are_stored_hashed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        users = UserRepository(session)
        ana = users.add("ana", is_admin=False, at=T0)
        users.add_token(ana, "s3cret", label="test", at=T0)
    with sessions() as session:
        users = UserRepository(session)
        found = users.by_token("s3cret")
        assert found is not None and found.name == "ana"
        assert users.by_token("wrong") is None
        assert users.count() == 1
        assert all("s3cret" not in t.token_hash for t in session.query(TokenRow))


def test_lease_has_one_holder_until_it_expires(sessions: sessionmaker[Session]) -> None:
    ttl = timedelta(seconds=10)

    def acquire(owner: str, at: datetime, dead: bool = False) -> bool:
        with sessions.begin() as session:
            return LeaseRepository(session).acquire(
                "engine", owner, at, ttl, holder_is_dead=lambda _o: dead
            )

    assert acquire("a", T0)
    assert not acquire("b", T0 + timedelta(seconds=5))
    assert acquire("a", T0 + timedelta(seconds=5))  # renewal moves the expiry
    assert not acquire("b", T0 + timedelta(seconds=12))
    assert acquire("b", T0 + timedelta(seconds=16))  # expired: taken over
    assert acquire("c", T0 + timedelta(seconds=17), dead=True)  # holder known gone
    with sessions.begin() as session:
        LeaseRepository(session).release("engine", "b")  # not b's any more: no-op
        LeaseRepository(session).release("engine", "c")
    assert acquire("d", T0 + timedelta(seconds=18))
