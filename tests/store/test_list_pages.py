"""List pages (JobRepository.list_page) against the plain Python answer, on
SQLite and PostgreSQL: every filter and choice the statement is built from
(several states, a non-admin's own jobs and projects' jobs, a tag), walked
page by page with cursors."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session, sessionmaker

from jobgate.domain.states import JobState
from jobgate.store import make_engine, make_session_factory, migrate
from jobgate.store.jobs import JOB_TAGS, JOBS, MAX_PAGE_WALKS, JobFilter, JobRepository

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
STATES = [JobState.PENDING, JobState.RUNNING, JobState.COMPLETED, JobState.FAILED,
          JobState.CANCELLED]
USERS = ["ana", "bob", "eve"]
PROJECTS = [None, "p1", "p2", "p3", "p4"]
TAGS = ["red", "blue", "green"]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(engine: Engine) -> tuple[sessionmaker[Session], list[dict[str, object]]]:
    """300 jobs of mixed users, projects, states, partitions and tags (some
    deleted); their values, tags included, as the ledger holds them."""
    rng = random.Random(5)
    jobs: list[dict[str, object]] = []
    tags: list[dict[str, object]] = []
    for job_id in range(1, 301):
        state = rng.choice(STATES)
        start = T0 + timedelta(seconds=job_id, microseconds=job_id) \
            if state is not JobState.PENDING else None
        values: dict[str, object] = dict(
            id=job_id, name=f"job {job_id} é", state=state.value, state_reason=None,
            held=job_id % 7 == 0, user_name=rng.choice(USERS), cluster="local",
            partition=rng.choice(["normal", "gpu"]), account=None,
            project=rng.choice(PROJECTS), num_nodes=1, ntasks=2, cpus_per_task=3,
            memory=None, memory_per_cpu=None, gpus=0, time_limit=None, priority=0,
            comment=None, working_directory="/w", standard_output="/w/o",
            standard_error="/w/e", submit_time=T0, start_time=start,
            end_time=start + timedelta(seconds=9) if start and state.final else None,
            updated_at=T0, requeue_count=0,
            spec={"command": "true"} | ({"dependencies": "afterok:1"} if job_id % 5 == 0
                                        else {}) | ({"qos": "high"} if job_id % 7 == 0 else {}),
            stats={"cpu_user": 1.5, "max_rss_kib": 7} if job_id % 4 == 0 else None,
            allocation={"node": "n1", "cpus": [0, 1]} if job_id % 6 == 0 else None,
            exit_code=0 if state is JobState.COMPLETED else None, exit_code_signal=None,
            array_job_id=100 if job_id % 9 == 0 else None,
            array_task_id=job_id if job_id % 9 == 0 else None,
            source="registry" if job_id % 8 == 0 else "gateway",
            registry_data={"nodes": "n[1-2]", "additional_data": {"x": [1, 2.5, None]}}
            if job_id % 8 == 0 else None,
            deleted_at=T0 if job_id % 50 == 0 else None,
        )
        job_tags = rng.sample(TAGS, rng.choice([0, 0, 1, 2, 3]))
        tags += [{"job_id": job_id, "tag": tag, "position": i} for i, tag in enumerate(job_tags)]
        jobs.append(values | {"tags": job_tags})
    with engine.begin() as connection:
        connection.execute(insert(JOBS), [{k: v for k, v in job.items() if k != "tags"}
                                          for job in jobs])
        connection.execute(insert(JOB_TAGS), tags)
    return make_session_factory(engine), jobs


def expected(jobs: list[dict[str, object]], filters: JobFilter) -> list[int]:
    def matches(job: dict[str, object]) -> bool:
        tags = job["tags"]
        assert isinstance(tags, list)
        if job["deleted_at"] is not None:
            return False
        if filters.states and job["state"] not in {s.value for s in filters.states}:
            return False
        if filters.tag is not None and filters.tag not in tags:
            return False
        for name in ("user_name", "cluster", "partition", "account"):
            wanted = getattr(filters, name)
            if wanted is not None and job[name] != wanted:
                return False
        if filters.visible_to is not None:
            owner, projects = filters.visible_to
            return job["user_name"] == owner or job["project"] in projects
        return True

    return sorted((int(str(job["id"])) for job in jobs if matches(job)), reverse=True)


def walk(sessions: sessionmaker[Session], filters: JobFilter, limit: int
         ) -> Iterator[dict[str, object]]:
    after: int | None = None
    while True:
        with sessions() as session:
            rows = JobRepository(session).list_page(filters, limit=limit, after_id=after)
        yield from rows
        if len(rows) < limit:
            return
        after = int(str(rows[-1]["id"]))


FILTERS = [
    JobFilter(),
    JobFilter(states=(JobState.RUNNING,)),
    JobFilter(states=(JobState.RUNNING, JobState.PENDING, JobState.RUNNING)),
    JobFilter(user_name="ana"),
    JobFilter(user_name="ana", states=(JobState.PENDING,)),
    JobFilter(user_name="bob", states=(JobState.COMPLETED, JobState.FAILED)),
    JobFilter(partition="gpu"),
    JobFilter(tag="red"),
    JobFilter(tag="red", states=(JobState.FAILED, JobState.COMPLETED), partition="normal"),
    JobFilter(cluster="local", account="none"),
    JobFilter(visible_to=("ana", ())),
    JobFilter(visible_to=("ana", ("p1", "p2"))),
    JobFilter(visible_to=(None, ("p3",))),
    JobFilter(visible_to=(None, ())),
    JobFilter(visible_to=("eve", ("p1",)), states=(JobState.PENDING, JobState.RUNNING),
              tag="blue"),
    # More walks than MAX_PAGE_WALKS: one walk with OR instead.
    JobFilter(visible_to=("bob", ("p1", "p2", "p3", "p4")), states=tuple(STATES)),
]


@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_pages_hold_the_matching_jobs_newest_first(
        ledger: tuple[sessionmaker[Session], list[dict[str, object]]], limit: int) -> None:
    sessions, jobs = ledger
    assert len(STATES) * (1 + 4) > MAX_PAGE_WALKS
    for filters in FILTERS:
        walked = list(walk(sessions, filters, limit))
        assert [row["id"] for row in walked] == expected(jobs, filters), filters


def test_a_page_holds_each_jobs_values_as_their_types_give_them(
        ledger: tuple[sessionmaker[Session], list[dict[str, object]]]) -> None:
    sessions, jobs = ledger
    by_id = {job["id"]: job for job in jobs}
    rows = list(walk(sessions, JobFilter(), 1000))
    assert len(rows) == 294
    for row in rows:
        job = by_id[row["id"]]
        spec = job["spec"]
        assert isinstance(spec, dict)
        wanted = {k: v for k, v in job.items() if k not in ("spec", "deleted_at", "updated_at")}
        assert row == wanted | {"dependencies": spec.get("dependencies"), "qos": spec.get("qos")}
        assert all(isinstance(row[k], datetime) and row[k].tzinfo is UTC  # type: ignore[union-attr]
                   for k in ("submit_time", "start_time", "end_time") if row[k] is not None)
        assert type(row["held"]) is bool


def test_filters_that_match_nothing_and_cursors_past_the_end(
        ledger: tuple[sessionmaker[Session], list[dict[str, object]]]) -> None:
    sessions, jobs = ledger
    with sessions() as session:
        repo = JobRepository(session)
        assert repo.list_page(JobFilter(user_name="nobody"), limit=10) == []
        assert repo.list_page(JobFilter(tag="nope", states=tuple(STATES)), limit=10) == []
        assert repo.list_page(JobFilter(), limit=10, after_id=1) == []
        # A statement is kept per shape: each run has its own values.
        for user, state in itertools.product([*USERS, "nobody"], STATES):
            filters = JobFilter(user_name=user, states=(state,), visible_to=(user, ("p2",)))
            assert [r["id"] for r in repo.list_page(filters, limit=1000)] \
                == expected(jobs, filters)
