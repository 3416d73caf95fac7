"""How one backend report changes a job (service.jobs.decide_update)."""

from __future__ import annotations

from datetime import UTC, datetime

from jobgate.domain.job import JobUpdate
from jobgate.domain.states import JobState
from jobgate.service.jobs import decide_update
from jobgate.store.jobs import Snapshot

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_launch_confirming_its_claim_never_undoes_a_suspend() -> None:
    suspended = Snapshot(7, JobState.SUSPENDED, NOW, 0)
    late = JobUpdate(7, JobState.RUNNING, start_time=NOW, native_id="7", run=0,
                     facts_only=True)
    change = decide_update(suspended, late, NOW)
    assert change is not None and change.move is None
    assert change.values == {"native_id": "7"}


def test_a_report_of_running_resumes_a_suspended_job_when_it_is_news() -> None:
    # e.g. Slurm says the job runs again (resumed outside jobgate)
    change = decide_update(Snapshot(7, JobState.SUSPENDED, NOW, 0),
                           JobUpdate(7, JobState.RUNNING, run=0), NOW)
    assert change is not None and change.move == (JobState.SUSPENDED, JobState.RUNNING)


def test_a_report_about_an_earlier_run_is_ignored() -> None:
    assert decide_update(Snapshot(7, JobState.RUNNING, NOW, 1),
                         JobUpdate(7, JobState.FAILED, run=0), NOW) is None
