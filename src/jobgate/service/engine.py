"""The engine: hands pending jobs to backends and applies what they report.

One thread per process. Each round reads the head of the pending queue (no lock),
asks the backend what to start, and claims those jobs (PENDING -> RUNNING) in one
transaction of bulk statements, only where a job is still as it was read; it
launches them, then applies every update the backends have in one more
transaction. A claim is committed before the launch:
after a crash between the two, `adopt` finds a RUNNING job that never started
and launches it then. Rows are only re-read when their `updated_at` moved.

Only the holder of the store's engine lease runs rounds: a second gateway on the
same store serves the API but leaves the jobs to the first, until its lease
expires or (on the same host) its process is seen gone.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import psutil

from jobgate.backends.base import Backend
from jobgate.domain.job import JobRecord, JobUpdate
from jobgate.domain.states import JobState
from jobgate.errors import JobgateError
from jobgate.service.eligibility import triage
from jobgate.service.jobs import JobService, utcnow
from jobgate.store.jobs import Change, JobRepository, states_of_refs, to_record
from jobgate.store.leases import LeaseRepository

if TYPE_CHECKING:
    from jobgate.service.imports import JobImports
    from jobgate.service.metrics import Metrics

log = logging.getLogger(__name__)

# How many pending jobs a backfill round considers, in queue order (Slurm's
# backfill looks 500 deep by default), and how many active jobs one cluster may have.
PENDING_WINDOW = 500
# Tasks of one array a backfill round considers: a large array cannot fill the window.
PER_ARRAY_WINDOW = 64
# Like Slurm's main scheduler beside its backfill scheduler, most rounds look only
# at the head of the queue, straight off its index: a round then costs the same
# with 50 or 50,000 jobs pending. The deep round runs at most this often.
HEAD_WINDOW = 64
BACKFILL_INTERVAL = 0.25
# A deep round reads every pending job of its cluster (to cap each array's
# share of the window), so its cost grows with the queue: 12 ms of CPU with
# 2,000 jobs pending, 92 ms with 50,000. Deep rounds are spaced out so that they
# take at most this share of the engine's time (Slurm's backfill: every 30 s).
DEEP_ROUND_SHARE = 0.1
# The least time between two rounds.
ROUND_GAP = 0.004
ACTIVE_LIMIT = 100_000
LEASE = "engine"
LEASE_TTL = timedelta(seconds=15)
STARTED_STATES = (JobState.RUNNING, JobState.SUSPENDED, JobState.COMPLETING)


class Engine:
    def __init__(
        self, service: JobService, backends: Mapping[str, Backend], *, interval: float = 0.5,
        metrics: Metrics | None = None, imports: JobImports | None = None,
    ) -> None:
        self.service = service
        self.backends = backends
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Updates taken from a backend but not yet committed: kept for the next
        # round should the store fail, since backends report each change once.
        self._backlog: list[JobUpdate] = []
        # Records of the jobs in the last round's queues, and in this round's.
        self._records: dict[int, _Cached] = {}
        self._seen: dict[int, _Cached] = {}
        self._offered: collections.deque[JobRecord] = collections.deque()
        # When each cluster's next deep (backfill) round is due, in monotonic time.
        self._backfill_due: dict[str, float] = {}
        self._deep_round = False
        # The nonce tells apart two engines of one process (tests, embedding).
        self.owner = f"{process_identity(os.getpid())}:{uuid.uuid4().hex[:8]}"
        self._lease_until: datetime | None = None
        self.metrics = metrics
        # Jobs the backends find on their clusters but did not get from us.
        self.imports = imports
        for backend in backends.values():
            backend.set_waker(self.wake)

    def wake(self, submitted: Sequence[JobRecord] = ()) -> None:
        """Run a round soon; `submitted` are records just committed, which the
        round then need not load again."""
        self._offered.extend(submitted)
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobgate-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for backend in self.backends.values():
            backend.close()

    def _run(self) -> None:
        adopted = False
        while not self._stop.is_set():
            try:
                if self.hold_lease():
                    if not adopted:
                        self._adopt()
                        adopted = True
                    self.run_once()
                else:
                    adopted = False  # whoever holds it now owns the active jobs
                    # Standing by: try for the lease on the interval, not on
                    # every wake, which would be a write per commit elsewhere.
                    self._stop.wait(self.interval)
            except Exception:  # keep the engine alive; the next round retries
                log.exception("engine round failed")
            ended = time.monotonic()
            self._wake.wait(self.interval)
            # Under load, what comes within a few ms joins one round, since a
            # round's cost is mostly fixed; a wake after a quiet spell runs at once.
            since = time.monotonic() - ended
            if since < ROUND_GAP:
                self._stop.wait(ROUND_GAP - since)
            self._wake.clear()
        self._release_lease()

    def hold_lease(self) -> bool:
        """Take or renew the engine lease; renewing only when half of it is used."""
        now = utcnow()
        if self._lease_until is not None and now < self._lease_until - LEASE_TTL / 2:
            return True
        with self.service.sessions.begin() as session:
            held = LeaseRepository(session).acquire(
                LEASE, self.owner, now, LEASE_TTL, holder_is_dead=process_is_gone
            )
        if not held and self._lease_until is not None:
            log.warning("engine lease lost to another process; standing by")
        self._lease_until = now + LEASE_TTL if held else None
        return held

    def _release_lease(self) -> None:
        if self._lease_until is None:
            return
        try:
            with self.service.sessions.begin() as session:
                LeaseRepository(session).release(LEASE, self.owner)
        except Exception:  # the lease simply expires
            log.exception("could not release the engine lease")

    def _adopt(self) -> None:
        for cluster, backend in self.backends.items():
            with self.service.sessions() as session:
                repo = JobRepository(session)
                rows = repo.in_states(cluster, STARTED_STATES, limit=10**9)
                if backend.capabilities.queues:
                    # Jobs waiting in the cluster's own queue are the backend's too.
                    rows += [row for row in repo.in_states(cluster, (JobState.PENDING,),
                                                           limit=10**9)
                             if row.native_id is not None]
                jobs = [to_record(row, with_tags=False) for row in rows]
            if jobs:
                log.info("adopting %d active jobs on %s", len(jobs), cluster)
            self.service.apply_updates(backend.adopt(jobs))
        if self.imports is not None:
            self.imports.adopt()

    def run_once(self) -> None:
        """One round: launch what is pending, then apply what changed."""
        if self.metrics is None:
            self._round()
            return
        with self.metrics.engine_round_seconds.time():
            self._round()

    def _round(self) -> None:
        self._seen = {}
        self._deep_round = False
        while self._offered:
            record = self._offered.popleft()
            # A new job's row was last written at its submit time.
            self._records[record.id] = _Cached(record.submit_time, record)
        for cluster, backend in self.backends.items():
            claimed = self._claim(cluster, backend)
            if claimed and self.metrics is not None:
                self.metrics.backend_calls.labels(cluster, "start").inc(len(claimed))
            for job in claimed:
                try:
                    started = backend.start(job)
                    if started.state is JobState.RUNNING:  # what the claim wrote
                        started = dataclasses.replace(started, facts_only=True)
                    if not says_nothing_new(started, job):
                        self._backlog.append(started)
                except JobgateError as exc:
                    self._backlog.append(
                        JobUpdate(job.id, JobState.FAILED, reason=exc.message[:256])
                    )
            self._backlog.extend(backend.poll())
        self.service.apply_updates(self._backlog)
        self._backlog = []
        if self.imports is not None:
            self.imports.run_once()
        # A deep round saw every job worth caching; a head round only some.
        if self._deep_round:
            self._records = self._seen
        else:
            self._records.update(self._seen)

    def _records_of(
        self, repo: JobRepository, versions: list[tuple[int, datetime]]
    ) -> list[JobRecord]:
        """Records in the order of `versions`, loading only the rows that changed
        since a record was last built: most of a queue stays the same from one
        round to the next."""
        stale = [job_id for job_id, at in versions
                 if (cached := self._records.get(job_id)) is None or cached.updated_at != at]
        for row in repo.get_many(stale).values() if stale else ():
            self._records[row.id] = _Cached(row.updated_at, to_record(row, with_tags=False))
        found = [(job_id, self._records.get(job_id)) for job_id, _ in versions]
        self._seen.update((job_id, c) for job_id, c in found if c is not None)
        return [c.record for _, c in found if c is not None]

    def _claim(self, cluster: str, backend: Backend) -> list[JobRecord]:
        """Decide what starts now and claim it, in one transaction: the eligible
        pending jobs go to the backend's selection; every job that stays pending
        gets its reason; jobs past their deadline or with dependencies that can
        never be met end here."""
        moment = time.monotonic()
        deep = moment >= self._backfill_due.get(cluster, 0.0)
        try:
            return self._claim_window(cluster, backend, deep)
        finally:
            if deep:
                self._backfill_due[cluster] = next_deep_round(moment, time.monotonic() - moment)

    def _claim_window(self, cluster: str, backend: Backend, deep: bool) -> list[JobRecord]:
        """`_claim` over the head of the queue, or with `deep` the backfill window.

        The round decides from a read that takes no write lock (SQLite's is one
        for the whole database: a round holding it kept every submission
        waiting), then writes what it decided only to jobs still at the version
        it read: a job cancelled, held or changed meanwhile is left for the
        next round. A round that changes nothing in the ledger (what a cluster
        that queues jobs gets handed, reasons as they were) writes nothing."""
        now = utcnow()
        with self.service.readers() as session:
            repo = JobRepository(session)
            if deep:
                self._deep_round = True
                queue = repo.queue(cluster, PENDING_WINDOW, PER_ARRAY_WINDOW)
            else:
                queue = repo.queue(cluster, HEAD_WINDOW)
            if not queue:
                return []
            pending = self._records_of(repo, queue)
            active = self._records_of(repo, repo.versions(cluster, STARTED_STATES, ACTIVE_LIMIT))
            verdict = triage(pending, active, now,
                             lambda refs: states_of_refs(session, refs))
        selection = backend.select(verdict.eligible, active, now)
        reasons = {job_id: reason for job_id, reason in
                   (verdict.reasons | selection.reasons).items()
                   if self._records[job_id].record.state_reason != reason}
        starting = [job for job in verdict.eligible if job.id in selection.start]
        # A cluster that queues jobs starts them itself: handed over, they stay
        # PENDING until it reports otherwise (with the native id it gave them).
        queues = backend.capabilities.queues
        ended = {"end_time": now}
        changes = [
            *(Change(job.id, ended, (JobState.PENDING, JobState.DEADLINE),
                     "deadline passed before the job could start")
              for job in verdict.past_deadline),
            *(Change(job.id, ended, (JobState.PENDING, JobState.CANCELLED),
                     "DependencyNeverSatisfied") for job in verdict.never_runnable),
            *(Change(job.id, {"start_time": now, "allocation": selection.start[job.id]},
                     (JobState.PENDING, JobState.RUNNING)) for job in starting
              if not queues),
            # A reason is not a change of state: no event, written only when
            # it differs from last round's.
            *(Change(job_id, {"state_reason": reason}) for job_id, reason in reasons.items()),
        ]
        written = self._write_if_unchanged(changes, dict(queue), now)
        if queues:
            claimed = starting
        else:
            claimed = [job.model_copy(update={
                "state": JobState.RUNNING, "state_reason": None, "start_time": now,
                "allocation": selection.start[job.id]}) for job in starting if job.id in written]
        # The rows written now are what was read plus what was just written, at
        # `now`: cache that rather than load them again next round.
        for job_id, reason in reasons.items():
            if job_id in written:
                record = self._records[job_id].record.model_copy(
                    update={"state_reason": reason})
                self._seen[job_id] = _Cached(now, record)
        self._seen.update((job.id, _Cached(now, job)) for job in claimed if job.id in written)
        return claimed

    def _write_if_unchanged(self, changes: list[Change], versions: dict[int, datetime],
                            now: datetime) -> set[int]:
        """Apply the changes of the jobs still at the version read (`versions`);
        the ids of those written."""
        if not changes:
            return set()
        with self.service.sessions.begin() as session:
            repo = JobRepository(session)
            written = repo.unchanged_since({change.job_id: versions[change.job_id]
                                            for change in changes})
            repo.apply([change for change in changes if change.job_id in written], now)
        return written


def says_nothing_new(update: JobUpdate, job: JobRecord) -> bool:
    """A launch's answer that only says the job stays as it was read (a cluster
    that queues jobs: "handed over, still PENDING"): applying it would change
    nothing, and would cost the round a write turn of its own."""
    return (update.state is job.state and not update.facts_only and update.reason is None
            and not update.data and update.run in (None, job.requeue_count)
            and all(fact is None for fact in (
                update.start_time, update.end_time, update.exit_code,
                update.exit_code_signal, update.native_id)))


def next_deep_round(started: float, took: float) -> float:
    """When (monotonic) the next deep round may run, after one that started
    at `started` and took `took` seconds: BACKFILL_INTERVAL later, or later
    still when deep rounds are costly (DEEP_ROUND_SHARE)."""
    return started + max(BACKFILL_INTERVAL, took / DEEP_ROUND_SHARE)


@dataclass(frozen=True)
class _Cached:
    updated_at: datetime
    record: JobRecord


def process_identity(pid: int) -> str:
    """host:pid:start-time, unique across pid reuse."""
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.3f}"


def process_is_gone(identity: str) -> bool:
    """Whether an identity (host:pid:start[:nonce]) names a process of this host
    that no longer runs."""
    host, pid, started, *_ = [*identity.split(":"), "", ""]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's process: only its lease's expiry tells
    try:
        return process_identity(int(pid)) != f"{host}:{pid}:{started}"
    except psutil.NoSuchProcess:
        return True
