"""Imported outside jobs into the ledger through the registry (service/imports.py),
on SQLite and PostgreSQL: created once and then left alone while unchanged,
chunked to the registry's batch size, and never a second row for a Slurm job
the gateway itself has. The backend here is a stand-in that hands over records
of the shape the Slurm importer makes (its own tests cover how it makes them)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from jobgate.backends.importing import ImportingBackend
from jobgate.domain.job import JobRecord
from jobgate.domain.states import JobState
from jobgate.service.imports import JobImports
from jobgate.service.registry import RegistryService
from jobgate.store import make_engine, make_session_factory, migrate
from jobgate.store.jobs import JobRepository
from jobgate.store.tables import JobEventRow, JobRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class HandsOverRecords:
    """An importing backend that hands over the records a test gives it."""

    imports_jobs = True

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.adopted: list[JobRecord] = []

    def take_imported(self) -> list[dict[str, Any]]:
        records, self.records = self.records, []
        return records

    def adopt_imported(self, jobs: Sequence[JobRecord]) -> None:
        self.adopted = list(jobs)


def record(job_id: int, state: str = "RUNNING", **extra: Any) -> dict[str, Any]:
    return {"job_id": job_id, "cluster_id": "hpc", "user": "ana", "state": state,
            "submitted": T0.isoformat(), "job_name": f"outside-{job_id}",
            "additional_data": {"imported_from": "slurm", "cluster": "hpc"}, **extra}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def gateway_job(sessions: sessionmaker[Session], native_id: str,
                end: datetime | None = None) -> int:
    values: dict[str, Any] = {
        "name": "ours", "state": "COMPLETED" if end else "RUNNING", "state_reason": None,
        "held": False, "user_name": "ana", "cluster": "hpc", "partition": "debug",
        "account": None, "num_nodes": 1, "ntasks": 1, "cpus_per_task": 1, "memory": None,
        "memory_per_cpu": None, "gpus": 0, "time_limit": None, "priority": 0, "comment": None,
        "working_directory": "/tmp", "standard_output": "/tmp/o", "standard_error": "/tmp/e",
        "submit_time": T0 - timedelta(days=1), "start_time": T0 - timedelta(days=1),
        "end_time": end, "updated_at": T0, "exit_code": None, "exit_code_signal": None,
        "requeue_count": 0, "native_id": native_id, "spec": {"command": "true"},
        "array_job_id": None, "array_task_id": None, "allocation": None, "stats": None,
    }
    with sessions.begin() as session:
        return JobRepository(session).insert(values, [], T0, "test")


def registry_rows(sessions: sessionmaker[Session]) -> dict[str, JobRow]:
    with sessions() as session:
        rows = session.scalars(select(JobRow).where(JobRow.source == "registry")).all()
        return {row.native_id or "": row for row in rows}


def event_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(JobEventRow)) or 0)


def test_the_stand_in_is_an_importing_backend() -> None:
    assert isinstance(HandsOverRecords(), ImportingBackend)


def test_records_become_registry_jobs_once_and_follow_their_changes(
        sessions: sessionmaker[Session]) -> None:
    backend = HandsOverRecords()
    imports = JobImports(sessions, RegistryService(sessions, max_batch=2),
                         {"hpc": backend})  # type: ignore[dict-item]
    backend.records = [record(n) for n in range(1, 6)]  # three batches of at most 2
    imports.run_once()
    rows = registry_rows(sessions)
    assert sorted(rows) == ["1", "2", "3", "4", "5"]
    assert rows["1"].registry_data == {
        "additional_data": {"imported_from": "slurm", "cluster": "hpc"}}
    events = event_count(sessions)
    backend.records = [record(1), record(2, "FAILED", exit_code="3:0",
                                         end=(T0 + timedelta(minutes=1)).isoformat())]
    imports.run_once()
    assert event_count(sessions) == events + 1  # job 1 unchanged: no event
    failed = registry_rows(sessions)["2"]
    assert (failed.state, failed.exit_code, failed.exit_code_signal) == ("FAILED", 3, None)
    imports.run_once()  # nothing taken: nothing written
    assert event_count(sessions) == events + 1


def test_a_slurm_job_of_the_gateway_is_never_imported(sessions: sessionmaker[Session]) -> None:
    gateway_job(sessions, "77")  # running: the same Slurm job, whatever its comment says
    gateway_job(sessions, "79", end=T0 - timedelta(hours=1))  # id given again since
    backend = HandsOverRecords()
    imports = JobImports(sessions, RegistryService(sessions), {"hpc": backend})  # type: ignore[dict-item]
    backend.records = [record(77), record(78), record(79)]
    imports.run_once()
    assert sorted(registry_rows(sessions)) == ["78", "79"]


def test_adoption_hands_over_the_clusters_registry_jobs_not_ended(
        sessions: sessionmaker[Session]) -> None:
    backend = HandsOverRecords()
    imports = JobImports(sessions, RegistryService(sessions), {"hpc": backend})  # type: ignore[dict-item]
    backend.records = [record(1), record(2, "COMPLETED"), record(3, "UNKNOWN"),
                       {**record(4), "cluster_id": "elsewhere"}]
    imports.run_once()
    imports.adopt()
    assert sorted((job.native_id, job.state) for job in backend.adopted) == [
        ("1", JobState.RUNNING), ("3", JobState.UNKNOWN)]


def test_backends_that_do_not_import_are_left_out(sessions: sessionmaker[Session]) -> None:
    quiet = HandsOverRecords()
    quiet.imports_jobs = False  # type: ignore[misc]
    imports = JobImports(sessions, RegistryService(sessions),
                         {"hpc": quiet, "local": object()})  # type: ignore[dict-item]
    assert imports.sources == {}
