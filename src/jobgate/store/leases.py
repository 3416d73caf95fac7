"""Leases in the store: one holder at a time, taken over when it expires."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobgate.store.tables import LeaseRow


class LeaseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def acquire(
        self, name: str, owner: str, now: datetime, ttl: timedelta,
        holder_is_dead: Callable[[str], bool] = lambda _owner: False,
    ) -> bool:
        """Take or renew the lease `name` for `owner`; False while another holds it.

        `holder_is_dead` lets a caller take over at once from a holder it knows
        is gone (a process of this host that no longer exists).
        """
        row = self.session.scalars(
            select(LeaseRow).where(LeaseRow.name == name).with_for_update()
        ).first()
        if row is None:
            self.session.add(LeaseRow(name=name, owner=owner, expires_at=now + ttl))
            self.session.flush()
            return True
        if row.owner != owner and row.expires_at > now and not holder_is_dead(row.owner):
            return False
        row.owner = owner
        row.expires_at = now + ttl
        self.session.flush()
        return True

    def release(self, name: str, owner: str) -> None:
        row = self.session.get(LeaseRow, name)
        if row is not None and row.owner == owner:
            self.session.delete(row)
            self.session.flush()
