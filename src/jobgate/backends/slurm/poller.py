"""One poller per Slurm cluster: what became of the jobs jobgate handed over.

Each cycle makes one squeue call for the whole cluster, whatever the number of
jobs tracked: its text form with the few fields a tracked job needs (20-50
times cheaper than --json), or --json when outside jobs are imported (the
importer reads whole job objects); jobgate's own jobs are picked out by the tag
in their comment. A tracked job that has left
squeue is looked up, for all such jobs at once, by one sacct call since the
oldest of them was last seen; else its wrapper's exit file tells; else it is
UNKNOWN, never COMPLETED by guess. When squeue cannot be reached nothing is
concluded: the ledger keeps the last known states.

The interval adapts: short while things change or right after a submission,
growing to `max_interval` while nothing does; no calls at all while nothing
is tracked, unless the cluster's outside jobs are imported (importer.py: the
same squeue, read whole, and the same sacct; their changes never shorten the
interval). Between polls the poller looks for the exit files the wrappers of
tracked jobs write as they end (a few hundred stats a look, round robin: no
call to Slurm), and a new one brings the next poll forward: a job's end is
known within a poll's time of it rather than within the interval. What the
file says is not taken for Slurm's word (a job that exited 0 may yet be
TIMEOUT, OUT_OF_MEMORY or CANCELLED): the poll decides, as ever. Whatever
brings a poll forward, polls are paced by a bucket that gains one poll every
`min_interval` and holds POLL_BURST: an end right after a poll is not kept
waiting, yet the calls a minute never pass 60 / min_interval (and the burst),
with 10 jobs or 10,000.
"""

from __future__ import annotations

import logging
import math
import os
import signal as signals
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jobgate.backends.slurm.importer import Importer, Lookup
from jobgate.backends.slurm.parsing import TAG_PREFIX, SlurmJob, Tag
from jobgate.backends.slurm.transport import AccountingUnavailable, Transport
from jobgate.backends.slurm.wrapper import RunDir
from jobgate.domain.job import JobUpdate
from jobgate.domain.states import JobState
from jobgate.errors import JobgateError

log = logging.getLogger(__name__)

# How far before a job was last seen sacct looks (its database lags a little).
SACCT_SLACK = 120
# How often a job that could not be found is looked for again.
LOST_RETRY = 30.0
# How often, between polls, the run directories are looked at for new exit
# files, and how many a look stats at most (the next look goes on from there).
EXIT_LOOK_INTERVAL = 0.1
EXIT_LOOK_FILES = 256
# Polls an exit file brings forward before Slurm says the job ended (a job
# requeued in the same run leaves its file awhile), the first of them once the
# file has been seen for EXIT_SETTLE seconds: Slurm learns of the end some tens
# of ms after the wrapper wrote it, and a poll before that is spent for nothing.
EXIT_PROMPTS = 3
EXIT_SETTLE = 0.05
# Polls that may follow one another at once after a quiet spell (see the module doc).
POLL_BURST = 2.0
STARTED = (JobState.RUNNING, JobState.SUSPENDED, JobState.COMPLETING)


@dataclass
class Tracked:
    """A job jobgate handed to Slurm and has not yet seen end."""

    tag: Tag
    native_id: str
    run_dir: RunDir
    submit_time: datetime
    # Monotonic time tracking began: a squeue begun before cannot show the job.
    since: float
    last_seen: datetime | None = None
    reported: tuple[object, ...] | None = None
    lost: bool = False
    next_lookup: float = 0.0
    # The exit file last seen (inode, mtime), the polls it may still bring
    # forward, and from when (monotonic).
    exit_seen: tuple[int, int] | None = None
    prompts: int = 0
    prompt_from: float = 0.0
    # The exit file's path, made once (a look stats it ten times a second).
    exit_path: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.exit_path = str(self.run_dir.exit_file)


@dataclass
class Snapshot:
    """The last squeue: jobgate's jobs by tag, and when that call began; when
    importing, the other jobs too."""

    jobs: dict[Tag, SlurmJob] = field(default_factory=dict)
    taken: float = -1.0
    others: list[SlurmJob] = field(default_factory=list)


def describe_signal(signum: int) -> str:
    try:
        return signals.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def update_from(job: SlurmJob, tracked: Tracked) -> JobUpdate:
    """What Slurm says of a tracked job, as jobgate's update."""
    reason = job.reason
    data: dict[str, object] = {"slurm_state": job.native_state, "slurm_job_id": job.native_id}
    exit_code, exit_signal = job.exit_code, job.exit_code_signal
    if job.state.final:
        # The CPU time the wrapper measured (a file read, no call to Slurm).
        ended = tracked.run_dir.outcome()
        if ended is not None:
            data |= ended.usage
            if exit_code is None and exit_signal is None:
                # slurmdbd's JSON (22.05, the REST transport) loses non-zero exit
                # codes: the wrapper recorded the script's.
                exit_code, exit_signal = ended.status.exit_code, ended.status.signal
        if exit_signal is not None:
            killed = f"killed by {describe_signal(exit_signal)}"
            reason = f"{killed} ({reason})" if reason else killed
    return JobUpdate(
        tracked.tag.job_id, job.state, reason=reason, start_time=job.start_time,
        end_time=job.end_time, exit_code=exit_code, exit_code_signal=exit_signal,
        native_id=job.native_id, run=tracked.tag.run, data=data,
    )


def update_from_exit_file(tracked: Tracked) -> JobUpdate | None:
    """The outcome the wrapper recorded, for a job Slurm no longer knows."""
    ended = tracked.run_dir.outcome()
    if ended is None:
        return None
    status = ended.status
    if status.signal is not None:
        state, reason = JobState.FAILED, f"killed by {describe_signal(status.signal)}"
    elif status.exit_code == 0:
        state, reason = JobState.COMPLETED, None
    else:
        state, reason = JobState.FAILED, "NonZeroExitCode"
    return JobUpdate(
        tracked.tag.job_id, state, reason=reason, start_time=tracked.run_dir.started_at(),
        end_time=ended.end_time, exit_code=status.exit_code, exit_code_signal=status.signal,
        native_id=tracked.native_id, run=tracked.tag.run,
        data={"source": "exit file", "slurm_job_id": tracked.native_id, **ended.usage},
    )


class Poller:
    """Tracks jobs and turns Slurm's answers into updates (see the module doc).

    `cycle()` is one round, callable directly (tests); `start()` runs rounds on
    a thread and hands their updates to `deliver`.
    """

    def __init__(
        self, transport: Transport, gateway: str, deliver: Callable[[list[JobUpdate]], None],
        *, accounting: bool | None = None, min_interval: float = 0.5,
        max_interval: float = 2.0, clock: Callable[[], float] = time.monotonic,
        importer: Importer | None = None,
    ) -> None:
        self.transport = transport
        self.gateway = gateway
        self.deliver = deliver
        # None: find out (the first sacct that says "no accounting" settles it).
        self.accounting = accounting
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.clock = clock
        self.importer = importer
        self.interval = min_interval
        self.snapshot = Snapshot()
        self.reachable: bool | None = None
        self.calls = {"squeue": 0, "sacct": 0}
        self._tracked: dict[Tag, Tracked] = {}
        # Jobs whose exit file was seen and whose end Slurm has not yet reported
        # (the poller's thread only), and where the next look at exit files begins.
        self._ending: dict[Tag, Tracked] = {}
        self._look_from = 0
        self.exit_prompted_polls = 0
        self._polls_in_hand = POLL_BURST
        self._polls_counted_at = clock()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- tracking --------------------------------------------------------------

    def track(self, tracked: Tracked) -> None:
        with self._lock:
            self._tracked[tracked.tag] = tracked
        self.wake()

    def tracked(self, tag: Tag) -> Tracked | None:
        with self._lock:
            return self._tracked.get(tag)

    def count(self) -> int:
        with self._lock:
            return len(self._tracked)

    # -- one round -------------------------------------------------------------

    def refresh(self) -> Snapshot:
        """One squeue: the cluster's view of jobgate's jobs (raises if unreachable).

        Raises:
            BackendError: squeue failed.
        """
        began = self.clock()
        self.calls["squeue"] += 1
        try:
            # Importing reads every job; else only ours are read at all.
            jobs = self.transport.queue(
                "" if self.importer else f"{TAG_PREFIX}:{self.gateway}:")
        except JobgateError:
            self.reachable = False
            raise
        self.reachable = True
        mine = {job.tag: job for job in jobs
                if job.tag is not None and job.tag.gateway == self.gateway}
        others = [job for job in jobs if job.tag is None or job.tag.gateway != self.gateway] \
            if self.importer else []
        self.snapshot = Snapshot(mine, began, others)
        return self.snapshot

    def cycle(self) -> list[JobUpdate]:
        """One round: squeue, and sacct for whatever left it. Nothing is
        concluded when squeue fails."""
        with self._lock:
            if not self._tracked and self.importer is None:
                return []
        try:
            snapshot = self.refresh()
        except JobgateError as exc:
            log.warning("slurm poller (%s): squeue failed, states kept: %s",
                        self.gateway, exc.message)
            return []
        now = datetime.now(UTC)
        updates: list[JobUpdate] = []
        missing: list[Tracked] = []
        self._spend_prompts()
        with self._lock:
            tracked = list(self._tracked.values())
        for item in tracked:
            job = snapshot.jobs.get(item.tag)
            if job is not None and job.native_id == item.native_id:
                item.last_seen, item.lost = now, False
                self._report(item, update_from(job, item), updates)
            elif item.since < snapshot.taken and self.clock() >= item.next_lookup:
                missing.append(item)
        lookups: list[Lookup] = []
        if self.importer is not None:
            self.importer.observe(snapshot.others, now, snapshot.taken)
            lookups = self.importer.due()
        if missing or lookups:
            self._resolve(missing, now, updates, lookups)
        if self.importer is not None:
            self.importer.flush()
        return updates

    def _report(self, item: Tracked, update: JobUpdate, updates: list[JobUpdate]) -> None:
        """Queue `update` when it says something new; a final one ends tracking.

        A job seen pending, then already ended (or completing), ran in between:
        its start is reported first, since states only move forward one step
        at a time (PENDING -> COMPLETED is no move of the ledger's)."""
        key = (update.state, update.reason, update.native_id, update.start_time is not None)
        if key != item.reported:
            seen_started = item.reported is not None and item.reported[0] in STARTED
            if update.start_time is not None and not seen_started \
                    and update.state not in (JobState.RUNNING, JobState.PENDING):
                updates.append(JobUpdate(
                    update.job_id, JobState.RUNNING, start_time=update.start_time,
                    native_id=update.native_id, run=update.run))
            item.reported = key
            updates.append(update)
        if update.state.final:
            with self._lock:
                self._tracked.pop(item.tag, None)
            self._ending.pop(item.tag, None)

    def _resolve(self, missing: list[Tracked], now: datetime, updates: list[JobUpdate],
                 lookups: list[Lookup] | None = None) -> None:
        """Jobs that left squeue: sacct (one call, for outside jobs too), else
        exit files, else UNKNOWN."""
        found: dict[str, SlurmJob] = {}
        looked_up = False
        lookups = lookups or []
        if self.accounting is not False:
            oldest = min([item.last_seen or item.submit_time for item in missing]
                         + [lookup.last_seen for lookup in lookups])
            seconds = int((now - oldest).total_seconds()) + SACCT_SLACK
            self.calls["sacct"] += 1
            try:
                records = self.transport.ended_since(
                    seconds, [i.native_id for i in missing] + [i.native_id for i in lookups])
                found = {job.native_id: job for job in records}
                looked_up = True
                self.accounting = True
            except AccountingUnavailable:
                log.info("slurm poller (%s): no accounting on this cluster", self.gateway)
                self.accounting = False
            except JobgateError as exc:
                log.warning("slurm poller (%s): sacct failed: %s", self.gateway, exc.message)
        if self.importer is not None and lookups:
            self.importer.resolve(lookups, found, looked_up=looked_up,
                                  accounting=self.accounting)
        for item in missing:
            job = found.get(item.native_id)
            # A job id Slurm gave again (state wiped) to someone else's job is not ours.
            if job is not None and job.state.final and (job.tag is None or job.tag == item.tag):
                self._report(item, update_from(job, item), updates)
                continue
            from_file = update_from_exit_file(item)
            if from_file is not None:
                self._report(item, from_file, updates)
                continue
            if self.accounting and not looked_up:
                continue  # sacct failed this time: ask again next round
            item.next_lookup = self.clock() + LOST_RETRY
            if not item.lost:
                item.lost = True
                where = "squeue, sacct or" if self.accounting else "squeue or"
                self._report(item, JobUpdate(
                    item.tag.job_id, JobState.UNKNOWN,
                    reason=f"Slurm job {item.native_id} is in neither {where} its exit file",
                    native_id=item.native_id, run=item.tag.run), updates)

    # -- exit files ------------------------------------------------------------

    def look_for_exits(self) -> float | None:
        """When a poll is wanted (monotonic time) for jobs whose wrapper wrote
        its exit file and whose end Slurm has not yet reported; None: no such
        job. Up to EXIT_LOOK_FILES stats of tracked jobs' run directories,
        round robin (a cheap local look on the shared file system, no call to
        Slurm)."""
        with self._lock:
            items = list(self._tracked.values())
        if items:
            start = self._look_from % len(items)
            batch = items[start:start + EXIT_LOOK_FILES]
            batch += items[:min(start, EXIT_LOOK_FILES - len(batch))]  # wrapped around
            self._look_from = start + len(batch)
            for item in batch:
                try:
                    found = os.stat(item.exit_path)
                except OSError:
                    continue
                mark = (found.st_ino, found.st_mtime_ns)
                if mark != item.exit_seen:
                    item.exit_seen, item.prompts = mark, EXIT_PROMPTS
                    item.prompt_from = self.clock() + EXIT_SETTLE
                    self._ending[item.tag] = item
        return min((item.prompt_from for item in self._ending.values()), default=None)

    def _spend_prompts(self) -> None:
        """A poll is under way: each ending job has one fewer to bring forward."""
        if self._ending:
            self.exit_prompted_polls += 1
        for tag, item in list(self._ending.items()):
            item.prompts -= 1
            if item.prompts <= 0:
                del self._ending[tag]

    # -- the thread ------------------------------------------------------------

    def wake(self) -> None:
        """Poll soon (a job was submitted or a verb sent)."""
        self.interval = self.min_interval
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"jobgate-slurm-{self.gateway}")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def pause_before_poll(self) -> float:
        """Seconds until the bucket holds a poll (0: it does)."""
        now = self.clock()
        self._polls_in_hand = min(POLL_BURST, self._polls_in_hand
                                  + (now - self._polls_counted_at) / self.min_interval)
        self._polls_counted_at = now
        return max(0.0, (1.0 - self._polls_in_hand) * self.min_interval)

    def take_poll(self) -> None:
        """A poll begins: one fewer in the bucket."""
        self.pause_before_poll()
        self._polls_in_hand -= 1.0

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            self.take_poll()
            self._wake.clear()  # what woke the poller until now, this poll answers
            try:
                updates = self.cycle()
                if updates:
                    busy = True
                    self.deliver(updates)
            except Exception:  # keep polling; the next round retries
                log.exception("slurm poller (%s): round failed", self.gateway)
            idle = self.count() == 0 and self.importer is None
            if busy:
                self.interval = self.min_interval
            elif self.reachable is False:
                self.interval = self.max_interval
            else:
                self.interval = min(self.interval * 1.25, self.max_interval)
            self._wait(idle)

    def _wait(self, idle: bool) -> None:
        """Until the interval is over (for ever when nothing is tracked), or
        sooner for a wake or a new exit file once the bucket holds a poll."""
        deadline = math.inf if idle else self.clock() + self.interval
        while not self._stop.is_set():
            now = self.clock()
            if now >= deadline:
                break
            pause = self.pause_before_poll()
            if pause > 0:
                self._stop.wait(min(deadline - now, pause))
                continue
            if self._wake.is_set():
                break
            if idle:
                self._wake.wait()
                continue
            due = self.look_for_exits()
            if due is not None and due <= now:
                break
            self._wake.wait(min(deadline, now + EXIT_LOOK_INTERVAL,
                                math.inf if due is None else due) - now)
