"""Deleting a job: a tombstone in the ledger, and the files jobgate made for it.

The row stays, with `deleted_at` set and a last `deleted` event: the ledger
never loses a job, the event log is never rewritten, and ids are never reused.
Every view of jobs leaves tombstones out (GET answers 404). What is removed are
the directories jobgate itself made for the job under its home: the run
directories `runs/<id>.<run>` and the default working directory `jobs/<id>`;
never a working directory the user chose.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from jobgate.domain.states import JobState
from jobgate.errors import ConflictError, JobgateError
from jobgate.service.access import require_actable, require_visible
from jobgate.service.auth import Principal
from jobgate.service.jobs import JobService, refuse_registry, utcnow
from jobgate.store.jobs import JobRepository, to_record

log = logging.getLogger(__name__)


class JobDeletion:
    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        # A job deleted while active loses its files once it has ended.
        jobs.on_deleted_ended = self.remove_files_of

    def delete(self, job_id: int, user: Principal, *, force: bool = False) -> None:
        """Delete a final job: it leaves every view, its files are removed.
        With `force`, an active job is cancelled first; its files go once it
        has ended (at once for a pending job).

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            ConflictError: the job is active and `force` is not set.
            VerbNotSupportedError: `force` on an active job whose cluster cannot cancel.
            BackendError: the cluster could not be asked to stop the job (then
                nothing is deleted).
            VerbNotSupportedError: a registry job (its scheduler keeps it).
        """
        job = self.jobs.get(job_id, user)
        require_actable(job, user, "delete")
        refuse_registry(job, "delete")
        asked_to_stop = False
        if not job.state.final:
            _require_force(job_id, job.state, force)
            if job.state is not JobState.PENDING:
                # Ask the cluster first: if that fails, nothing has changed.
                self.jobs.backend_for(job, "cancel").cancel(job)
                asked_to_stop = True
        now = utcnow()
        with self.jobs.sessions.begin() as session:
            repo = JobRepository(session)
            row = repo.get(job_id, for_update=True)
            require_visible(row, job_id, user)  # deleted meanwhile
            assert row is not None
            state = JobState(row.state)
            if not state.final:
                _require_force(job_id, state, force)  # requeued meanwhile
            if state is JobState.PENDING:
                repo.transition(job_id, state, JobState.CANCELLED, now,
                                reason=f"cancelled by {user.describe()} (deleted)",
                                values={"end_time": now})
                state = JobState.CANCELLED
            repo.tombstone(row, now, f"deleted by {user.describe()}")
            working_directory = row.working_directory
            current = to_record(row)
        if state.final:
            self.remove_files(job_id, working_directory)
            return
        if not asked_to_stop:
            # It started between our look and the tombstone: stop it now.
            try:
                self.jobs.backend_for(current, "cancel").cancel(current)
            except JobgateError:
                log.exception("job %s was deleted but could not be cancelled", job_id)

    def remove_files_of(self, ids: list[int]) -> None:
        """Remove the files of deleted jobs that have just ended."""
        with self.jobs.sessions() as session:
            directories = JobRepository(session).working_directories(ids)
        for job_id, working_directory in directories.items():
            self.remove_files(job_id, working_directory)

    def remove_files(self, job_id: int, working_directory: str) -> None:
        """Remove the run records and the default working directory of a job."""
        home = self.jobs.settings.resolved_home
        runs = home / "runs"
        own = re.compile(rf"{job_id}\.\d+(\.script|\.cancel)?")
        doomed = [path for path in runs.glob(f"{job_id}.*") if own.fullmatch(path.name)]
        default = self.jobs.settings.jobs_dir / str(job_id)
        if Path(working_directory) == default:
            doomed.append(default)
        for path in doomed:
            _remove(path)


def _require_force(job_id: int, state: JobState, force: bool) -> None:
    if not force:
        raise ConflictError(
            f"job {job_id} is {state.value}: cancel it first, or pass force=true to "
            "cancel and delete it", details={"state": state.value})


def _remove(path: Path) -> None:
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path)
    except OSError:
        log.exception("could not remove %s", path)
