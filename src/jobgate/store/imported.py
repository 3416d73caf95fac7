"""The ledger queries of importing outside jobs (service/imports.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import literal_column, select
from sqlalchemy.orm import Session, raiseload

from jobgate.domain.job import JobRecord
from jobgate.domain.registry import GATEWAY, REGISTRY
from jobgate.domain.states import FINAL_STATES, JobState
from jobgate.store.jobs import to_record
from jobgate.store.tables import JobRow

NOT_ENDED = tuple(state.value for state in JobState if state not in FINAL_STATES)


def gateway_native_ids(session: Session, cluster: str, native_ids: Sequence[str]
                       ) -> list[tuple[str, datetime | None]]:
    """(native_id, end_time) of the gateway's jobs on `cluster` that have one of
    `native_ids` (the index ix_jobs_gateway_native, whose condition a planner
    matches only against the literal source, never a bound parameter)."""
    if not native_ids:
        return []
    query = select(JobRow.native_id, JobRow.end_time).where(
        JobRow.cluster == cluster, JobRow.source == literal_column(f"'{GATEWAY}'"),
        JobRow.native_id.in_(list(native_ids)))
    return [(native_id, end) for native_id, end in session.execute(query) if native_id]


def registry_jobs_not_ended(session: Session, cluster: str) -> list[JobRecord]:
    """The registry's jobs on `cluster` that have not ended (UNKNOWN ones too)."""
    query = (select(JobRow)
             .where(JobRow.cluster == cluster, JobRow.source == REGISTRY,
                    JobRow.state.in_(NOT_ENDED), JobRow.deleted_at.is_(None))
             .order_by(JobRow.id)
             .options(raiseload(JobRow.tags)))
    return [to_record(row, with_tags=False) for row in session.scalars(query)]
