"""Which pending jobs the local cluster starts now: priority order with EASY backfill.

The embedded `local` cluster is one node that should schedule like a small Slurm:
pending jobs go by priority, then submit order; the first job that does not fit gets
the one reservation (EASY), and later jobs may jump ahead only if they cannot delay
it. `schedule` is pure: the caller passes the clock and the node's state in, and
gets back what to start, with the exact CPU and GPU ids, and why the rest wait.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PRIORITY = "Priority"
"""Pending reason of a job that would fit now but is held back for the reservation."""

RESOURCES = "Resources"
"""Pending reason of a job that does not fit in what is free now."""


@dataclass(frozen=True)
class Resources:
    """What the node offers to jobs: usable CPU ids, memory in MiB, GPU indices."""

    cpus: tuple[int, ...]
    memory: int
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class Allocation:
    """The exact CPU ids, memory (MiB) and GPU indices a job holds."""

    cpus: tuple[int, ...]
    memory: int
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class Running:
    """A job holding resources now; `expected_end` is None when it has no time limit."""

    job_id: int
    allocation: Allocation
    expected_end: float | None


@dataclass(frozen=True)
class Request:
    """A pending job known to be eligible; a lower `job_id` was submitted earlier."""

    job_id: int
    cpus: int
    memory: int
    gpus: int
    time_limit: float | None
    priority: int


@dataclass(frozen=True)
class Decision:
    """Jobs to start now, in start order, and the pending reason of every other one."""

    start: list[tuple[int, Allocation]]
    waiting: dict[int, str]


@dataclass(frozen=True)
class _Amount:
    """Resources as counts: enough to reason about the future, where ids do not matter."""

    cpus: int
    memory: int
    gpus: int

    def __add__(self, other: _Amount) -> _Amount:
        return _Amount(self.cpus + other.cpus, self.memory + other.memory, self.gpus + other.gpus)

    def __sub__(self, other: _Amount) -> _Amount:
        return _Amount(self.cpus - other.cpus, self.memory - other.memory, self.gpus - other.gpus)

    def covers(self, need: _Amount) -> bool:
        return self.cpus >= need.cpus and self.memory >= need.memory and self.gpus >= need.gpus

    def floored(self) -> _Amount:
        return _Amount(max(self.cpus, 0), max(self.memory, 0), max(self.gpus, 0))


def _need(request: Request) -> _Amount:
    # A job asking for no CPU is invalid; it would still occupy one to run at all.
    return _Amount(max(request.cpus, 1), max(request.memory, 0), max(request.gpus, 0))


class _Free:
    """What is free now, by id, so that starting a job yields its exact allocation."""

    def __init__(self, resources: Resources, running: Sequence[Running]) -> None:
        held_cpus = {c for job in running for c in job.allocation.cpus}
        held_gpus = {g for job in running for g in job.allocation.gpus}
        self.cpus = sorted(set(resources.cpus) - held_cpus)
        self.gpus = sorted(set(resources.gpus) - held_gpus)
        self.memory = resources.memory - sum(job.allocation.memory for job in running)

    @property
    def amount(self) -> _Amount:
        return _Amount(len(self.cpus), self.memory, len(self.gpus))

    def take(self, need: _Amount) -> Allocation:
        # Lowest ids first, so that the same state always gives the same placement.
        cpus, self.cpus = self.cpus[: need.cpus], self.cpus[need.cpus :]
        gpus, self.gpus = self.gpus[: need.gpus], self.gpus[need.gpus :]
        self.memory -= need.memory
        return Allocation(tuple(cpus), need.memory, tuple(gpus))


def _reserve(
    free: _Amount, releases: Iterable[tuple[float, _Amount]], need: _Amount
) -> tuple[float, _Amount]:
    """Return the top job's shadow time and the extra left beside it at that time.

    The extra is what a job may take even if it runs forever without delaying the
    top job. When the top job can never fit (unlimited jobs hold what it needs) the
    shadow is infinite; the extra is then only what exceeds the top job's need in
    each resource once every limited job has ended, which stays safe whenever the
    unlimited jobs end.
    """
    ordered = sorted(releases, key=lambda release: release[0])
    for i, (end, amount) in enumerate(ordered):
        free += amount
        # Release every job ending at the same moment before looking, or the extra
        # would miss what they free.
        if i + 1 < len(ordered) and ordered[i + 1][0] == end:
            continue
        if free.covers(need):
            return end, free - need
    return math.inf, (free - need).floored()


def schedule(
    resources: Resources, running: Sequence[Running], pending: Sequence[Request], now: float
) -> Decision:
    """Decide which pending jobs start now and why the others wait, as Slurm would.

    Jobs go by priority (higher first), then job id. Each job that fits in what is
    free starts, on the lowest free CPU and GPU ids. The first job that does not fit
    but could fit on the empty node is the top waiting job: it gets a reservation at
    its shadow time, the earliest time enough would be free once running jobs (and
    those started here) end at their time limits. A later job is backfilled only if
    it fits now and either ends by the shadow time or fits in the extra that the
    top job leaves free at the shadow time.

    Args:
        resources: What the node offers to jobs.
        running: Jobs holding resources now.
        pending: Eligible pending jobs, in any order.
        now: The current time, in epoch seconds.

    Returns:
        The jobs to start, in start order, with their allocations; every other
        request's reason: "Resources" if it does not fit in what is free now (the
        top waiting job included), "Priority" if it fits but would delay the top job.

    Raises:
        Nothing: inconsistent input (overlapping allocations, overcommitted memory)
        only makes less look free.
    """
    node_cpus, node_gpus = set(resources.cpus), set(resources.gpus)
    node = _Amount(len(node_cpus), resources.memory, len(node_gpus))
    free = _Free(resources, running)
    # Ids outside the node are not counted as free now, so they must not be released.
    releases = [
        (
            job.expected_end,
            _Amount(
                len(node_cpus.intersection(job.allocation.cpus)),
                job.allocation.memory,
                len(node_gpus.intersection(job.allocation.gpus)),
            ),
        )
        for job in running
        if job.expected_end is not None
    ]
    start: list[tuple[int, Allocation]] = []
    waiting: dict[int, str] = {}
    reservation: tuple[float, _Amount] | None = None  # (shadow, extra); at most one

    for request in sorted(pending, key=lambda r: (-r.priority, r.job_id)):
        need = _need(request)
        if not free.amount.covers(need):
            waiting[request.job_id] = RESOURCES
            # A job bigger than the node can never start, so reserving for it would
            # only block everyone behind it.
            if reservation is None and node.covers(need):
                reservation = _reserve(free.amount, releases, need)
            continue
        if reservation is not None:
            shadow, extra = reservation
            ends_in_time = (
                request.time_limit is not None
                and math.isfinite(shadow)
                and now + request.time_limit <= shadow
            )
            if not ends_in_time:
                if not extra.covers(need):
                    waiting[request.job_id] = PRIORITY
                    continue
                # It may outlive the shadow time, so it uses up part of the extra.
                reservation = (shadow, extra - need)
        allocation = free.take(need)
        start.append((request.job_id, allocation))
        if reservation is None and request.time_limit is not None:
            # Later reservations must see this job's resources coming back.
            releases.append((now + request.time_limit, need))
    return Decision(start=start, waiting=waiting)
