"""Accounting: what the ledger's jobs used, summed per group (sreport's view).

Every figure is a sum over the jobs of a group, each job counted as
`GET /v1/jobs` shows it, so that a group's figures are the sums of its jobs'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class GroupBy(StrEnum):
    """What the jobs are grouped by."""

    # The job's project; for a job in none, its account (Slurm's --account).
    PROJECT = "project"
    USER = "user"
    CLUSTER = "cluster"
    PARTITION = "partition"
    STATE = "state"
    # The UTC day of the job's submit_time, as YYYY-MM-DD.
    DAY = "day"


@dataclass(frozen=True)
class Usage:
    """The sums over one group of jobs (`key` None: no value, e.g. no account)."""

    key: str | None
    count: int = 0
    cpus: int = 0
    memory: int = 0
    ntasks: int = 0
    elapsed_cpu_time: int = 0
    wall_time: int = 0
    queue_time: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            key=None, count=self.count + other.count, cpus=self.cpus + other.cpus,
            memory=self.memory + other.memory, ntasks=self.ntasks + other.ntasks,
            elapsed_cpu_time=self.elapsed_cpu_time + other.elapsed_cpu_time,
            wall_time=self.wall_time + other.wall_time,
            queue_time=self.queue_time + other.queue_time,
        )


@dataclass(frozen=True)
class UsageReport:
    """Usage per group of the jobs submitted in [since, until), as of `now`."""

    group_by: GroupBy
    since: datetime | None
    until: datetime | None
    now: datetime
    groups: list[Usage]

    @property
    def total(self) -> Usage:
        return sum(self.groups, Usage(key=None))
