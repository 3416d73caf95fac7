"""Accounting: usage of the ledger's jobs per project, user, cluster, partition,
state or day. A user sees the usage of their own jobs; an admin sees all."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from jobgate.domain.accounting import GroupBy, UsageReport
from jobgate.errors import InvalidSpecError
from jobgate.service.auth import Principal
from jobgate.service.jobs import utcnow
from jobgate.store.accounting import usage_by


class AccountingService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def usage(
        self, user: Principal, group_by: GroupBy, *, since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageReport:
        """Usage per group of the jobs submitted in [since, until) that the caller
        may see. Times without a zone are taken as UTC.

        Raises:
            InvalidSpecError: `since` is after `until`.
        """
        since, until = _utc(since), _utc(until)
        if since is not None and until is not None and since > until:
            raise InvalidSpecError("since", since.isoformat(),
                                   f"must not be after until ({until.isoformat()})")
        now = utcnow()
        with self.sessions() as session:
            groups = usage_by(session, group_by, now=now, since=since, until=until,
                              user_name=None if user.is_admin else user.name)
        return UsageReport(group_by=group_by, since=since, until=until, now=now,
                           groups=groups)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
