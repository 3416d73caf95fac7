"""How far the event log may be read without skipping an event for good.

On PostgreSQL a transaction takes its event's seq when it inserts it, not when
it commits: seq 100 may become visible after seq 101. A reader that moved its
cursor past 101 would never see 100. So readers stop before the first gap among
recent events; a gap is passed once the event after it is older than
GAP_SETTLE (its transaction rolled back, or the seq was lost in a crash: such a
gap never fills). SQLite commits one writer at a time, in seq order: no gaps
wait there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobgate.store.tables import JobEventRow

# Longer than any transaction that writes events lasts.
GAP_SETTLE = timedelta(seconds=2)
# The newest events examined for gaps; beyond it, readers wait for the next look.
RECENT = 10_000


def settled_horizon(session: Session, after_seq: int) -> int | None:
    """The highest seq the log after `after_seq` may be read up to now; None on
    SQLite, which needs no limit. Events committed after this look are beyond
    what it returns, so that a later statement cannot see past a new gap."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    recent = _scan(session, after_seq, newest=True)
    if not recent:
        return after_seq
    settled_before = datetime.now(UTC) - GAP_SETTLE
    if len(recent) == RECENT and recent[0][0] != after_seq + 1:
        if recent[0][1] > settled_before:
            # More than RECENT events within GAP_SETTLE: read on from the cursor
            # through the oldest of them first.
            recent = _scan(session, after_seq, newest=False)
        else:
            after_seq = recent[0][0] - 1  # what is older is settled
    expected = after_seq + 1
    for seq, at in recent:
        if seq != expected and at > settled_before:
            return expected - 1  # a gap before a recent event: it may still fill
        expected = seq + 1
    return expected - 1


def _scan(session: Session, after_seq: int, *, newest: bool) -> list[tuple[int, datetime]]:
    """Up to RECENT (seq, at) after `after_seq`, in seq order: the newest or the oldest."""
    order = JobEventRow.seq.desc() if newest else JobEventRow.seq
    rows = [(seq, at) for seq, at in session.execute(
        select(JobEventRow.seq, JobEventRow.at).where(JobEventRow.seq > after_seq)
        .order_by(order).limit(RECENT))]
    return rows[::-1] if newest else rows
