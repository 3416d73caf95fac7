"""/v1/stats: accounting, usage summed per project, user, cluster, partition,
state or day."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.schemas import UsageReportOut
from jobgate.domain.accounting import GroupBy

router = APIRouter(tags=["accounting"])

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_8601(value: object) -> object:
    # pydantic would also take a number as a Unix time: here, only ISO 8601 text.
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 time, e.g. 2024-03-01T00:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_8601)]


@router.get("/v1/stats", response_model=UsageReportOut)
def stats(
    gateway: GatewayDep, user: UserDep,
    group_by: Annotated[GroupBy, Query(description=(
        "project (the job's project, else its account), user, cluster, "
        "partition, state, or day (UTC day of submit_time)"))],
    since: Annotated[IsoTime | None, Query(description=(
        "ISO 8601; only jobs submitted at or after this (no zone: UTC)"))] = None,
    until: Annotated[IsoTime | None, Query(description=(
        "ISO 8601; only jobs submitted before this (no zone: UTC)"))] = None,
) -> UsageReportOut:
    """Count, CPUs, memory, tasks, CPU time, wall time and queue time of jobs,
    per group: a user's own jobs, or every job for an admin (registry jobs
    included). Running and waiting jobs count up to `now` in the answer."""
    return UsageReportOut.of(gateway.accounting.usage(user, group_by, since=since, until=until))
