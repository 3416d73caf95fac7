"""`Jobs`: many jobs at once (pyslurm's `Jobs`), and `as_completed`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from jobgate.client.errors import WaitTimeout
from jobgate.client.job import Job, _default_client
from jobgate.domain.states import JobState

if TYPE_CHECKING:
    from jobgate.client.client import Client

__all__ = ["Jobs", "as_completed"]

FINAL_STATES = [state.value for state in JobState if state.final]
EVENT_PAGE = 1000
LONG_POLL = 30.0


class Jobs(dict[int, Job]):
    """Jobs by id, with sums over them (pyslurm's `Jobs`).

    ``Jobs.load(state="RUNNING")`` fetches every matching job, following the pages.
    `reload()` fetches again: a `frozen` collection keeps its set of jobs (new
    ones are not added, vanished ones are kept), otherwise it becomes the
    current answer to the same filters.
    """

    def __init__(self, jobs: Iterable[Job] = (), *, client: Client | None = None,
                 frozen: bool = False, filters: dict[str, Any] | None = None) -> None:
        super().__init__((job.id, job) for job in jobs)
        self.client = client
        self.frozen = frozen
        self.filters = dict(filters or {})

    @classmethod
    def load(cls, client: Client | None = None, *, frozen: bool = False,
             **filters: Any) -> Jobs:
        """Every job matching `filters` (state, tag, user, cluster, partition,
        limit), newest first; without `client`, the default one.

        Raises:
            InvalidSpecError: an unknown state or a bad limit.
            UnauthorizedError: no token, or a wrong one.
            UnreachableError: the gateway did not answer.
        """
        client = client or _default_client()
        return cls(client.iter_jobs(**filters, page_size=1000), client=client,
                   frozen=frozen, filters=filters)

    def reload(self) -> Jobs:
        """Fetch the jobs again (see the class for `frozen`); the Job objects
        already here are updated in place.

        Raises:
            UnreachableError: the gateway did not answer.
        """
        client = self.client or _default_client()
        self.client = client
        fresh = {job.id: job for job in client.iter_jobs(**self.filters, page_size=1000)}
        for job_id, job in fresh.items():
            if job_id in self:
                fresh[job_id] = self[job_id]._apply(job)
        if self.frozen:
            return self
        self.clear()
        self.update(fresh)  # the server's order: newest first
        return self

    def as_list(self) -> list[Job]:
        """The jobs, newest first."""
        return list(self.values())

    @property
    def memory(self) -> int:
        """MiB asked for in all (per-node memory x nodes, or per-CPU x CPUs)."""
        total = 0
        for job in self.values():
            if job.memory is not None:
                total += job.memory * job.num_nodes
            else:
                total += (job.memory_per_cpu or 0) * job.cpus
        return total

    @property
    def cpus(self) -> int:
        """CPUs asked for in all."""
        return sum(job.cpus for job in self.values())

    @property
    def ntasks(self) -> int:
        """Tasks asked for in all."""
        return sum(job.ntasks for job in self.values())

    @property
    def elapsed_cpu_time(self) -> int:
        """CPU-seconds used in all (run_time x cpus of each job)."""
        return sum(job.elapsed_cpu_time for job in self.values())

    @property
    def run_time(self) -> int:
        """Seconds run in all."""
        return sum(job.run_time for job in self.values())


def as_completed(jobs: Iterable[Job], timeout: float | None = None,
                 client: Client | None = None) -> Iterator[Job]:
    """Yield each job as it reaches a final state (already final ones first).

    Listens on the gateway's event log (long-polls for final states), so it
    costs a request per state change, not per job per second.

    Raises:
        WaitTimeout: some jobs were not final after `timeout` seconds.
        UnreachableError: the gateway did not answer.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    pending: dict[int, Job] = {}
    for job in jobs:
        pending[job.id] = job
    if not pending:
        return
    client = client or next(iter(pending.values())).client
    # Listen from before the last thing each job did, then look: nothing is missed.
    after = min((events[-1]["seq"] if (events := client.events(job_id)) else 0)
                for job_id in pending) if pending else 0
    for job_id, job in list(pending.items()):
        job.update(flushcache=True)
        if job.state.final:
            del pending[job_id]
            yield job
    while pending:
        left = LONG_POLL if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"{len(pending)} jobs not final after {timeout:g} s: "
                              f"{sorted(pending)[:10]}", details={"pending": sorted(pending)})
        events = client.events(after=after, wait=min(left, LONG_POLL), state=FINAL_STATES,
                               limit=EVENT_PAGE)
        for event in events:
            after = max(after, int(event["seq"]))
            waiting = pending.get(int(event["job_id"]))
            if waiting is None:
                continue
            waiting.update(flushcache=True)
            if waiting.state.final:
                del pending[waiting.id]
                yield waiting
