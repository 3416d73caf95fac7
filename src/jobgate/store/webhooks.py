"""Webhooks and their deliveries. It flushes; the service owns the commit.

A delivery row is made per (webhook, event) by the dispatcher reading the event
log after the webhook's `last_seq`, never in the job's own transaction: the log
is durable already, so a crash loses nothing and job writes stay as fast.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from jobgate.store.tables import Base, JobEventRow, JobRow, UserRow, WebhookDeliveryRow, WebhookRow

DeliveryStatus = Literal["pending", "delivered", "failed"]
PENDING: DeliveryStatus = "pending"
DELIVERED: DeliveryStatus = "delivered"
FAILED: DeliveryStatus = "failed"
STATUSES: tuple[DeliveryStatus, ...] = (PENDING, DELIVERED, FAILED)

_DELIVERIES = Base.metadata.tables["webhook_deliveries"]
# One compiled statement for every outcome, run as executemany.
_RECORD = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("delivery_id"), _DELIVERIES.c.status == PENDING)
    .values(status=bindparam("status"), attempts=bindparam("attempts"),
            last_attempt_at=bindparam("at"), last_status_code=bindparam("status_code"),
            last_error=bindparam("error"), next_attempt_at=bindparam("next_attempt_at"),
            delivered_at=bindparam("delivered_at"))
)


@dataclass(frozen=True)
class Webhook:
    id: int
    user_name: str
    url: str
    description: str
    created_at: datetime
    last_seq: int
    counts: dict[str, int]


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: int
    event_seq: int
    job_id: int
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class Subscriber:
    """A webhook as the dispatcher scans for it: whose events it gets."""

    id: int
    user_name: str
    is_admin: bool
    last_seq: int


@dataclass(frozen=True)
class Attempt:
    """What one try of a delivery came to, as the row is to be after it."""

    delivery_id: int
    status: DeliveryStatus
    attempts: int
    at: datetime
    status_code: int | None
    error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class DueDelivery:
    id: int
    webhook_id: int
    url: str
    secret: str
    payload: dict[str, Any]
    attempts: int


class WebhookRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- the owner's side -----------------------------------------------------

    def add(self, user_name: str, url: str, secret: str, description: str,
            at: datetime) -> WebhookRow:
        """A new webhook that gets the events after the newest one of now."""
        last = self.session.scalar(select(func.max(JobEventRow.seq))) or 0
        row = WebhookRow(user_name=user_name, url=url, secret=secret, description=description,
                         created_at=at, last_seq=last)
        self.session.add(row)
        self.session.flush()
        return row

    def any(self) -> bool:
        return self.session.scalar(select(WebhookRow.id).limit(1)) is not None

    def count_of(self, user_name: str) -> int:
        return self.session.scalar(
            select(func.count()).select_from(WebhookRow)
            .where(WebhookRow.user_name == user_name)) or 0

    def get(self, webhook_id: int) -> WebhookRow | None:
        return self.session.get(WebhookRow, webhook_id)

    def rows(self, user_name: str | None) -> list[WebhookRow]:
        query = select(WebhookRow).order_by(WebhookRow.id)
        if user_name is not None:
            query = query.where(WebhookRow.user_name == user_name)
        return list(self.session.scalars(query))

    def delete(self, row: WebhookRow) -> None:
        # Plain statements: the deliveries go whether or not the database
        # enforces the foreign key's cascade (SQLite needs a pragma for it).
        self.session.execute(
            delete(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == row.id))
        self.session.execute(delete(WebhookRow).where(WebhookRow.id == row.id))

    def view(self, rows: Sequence[WebhookRow]) -> list[Webhook]:
        """Rows with their deliveries counted by status, in one query."""
        counts: dict[int, dict[str, int]] = {row.id: dict.fromkeys(STATUSES, 0) for row in rows}
        if rows:
            for webhook_id, status, count in self.session.execute(
                    select(WebhookDeliveryRow.webhook_id, WebhookDeliveryRow.status, func.count())
                    .where(WebhookDeliveryRow.webhook_id.in_(list(counts)))
                    .group_by(WebhookDeliveryRow.webhook_id, WebhookDeliveryRow.status)):
                counts[webhook_id][status] = count
        return [Webhook(id=row.id, user_name=row.user_name, url=row.url,
                        description=row.description, created_at=row.created_at,
                        last_seq=row.last_seq, counts=counts[row.id]) for row in rows]

    def deliveries(
        self, webhook_id: int, *, limit: int, before_seq: int | None = None,
        status: str | None = None, job_id: int | None = None,
    ) -> list[Delivery]:
        """Newest event first."""
        query = select(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == webhook_id)
        if before_seq is not None:
            query = query.where(WebhookDeliveryRow.event_seq < before_seq)
        if status is not None:
            query = query.where(WebhookDeliveryRow.status == status)
        if job_id is not None:
            query = query.where(WebhookDeliveryRow.job_id == job_id)
        rows = self.session.scalars(
            query.order_by(WebhookDeliveryRow.event_seq.desc()).limit(limit))
        return [_delivery(row) for row in rows]

    # -- the dispatcher's side --------------------------------------------------

    def subscribers(self) -> list[Subscriber]:
        """Every webhook, with whether its owner is an admin now (a demoted
        admin's webhook stops getting other users' events)."""
        query = (select(WebhookRow.id, WebhookRow.user_name, UserRow.is_admin,
                        WebhookRow.last_seq)
                 .outerjoin(UserRow, UserRow.name == WebhookRow.user_name)
                 .order_by(WebhookRow.id))
        return [Subscriber(id, user, bool(admin), last)
                for id, user, admin, last in self.session.execute(query)]

    def seqs_after(self, after_seq: int, limit: int) -> list[int]:
        return list(self.session.scalars(
            select(JobEventRow.seq).where(JobEventRow.seq > after_seq)
            .order_by(JobEventRow.seq).limit(limit)))

    def max_seq(self) -> int:
        return self.session.scalar(select(func.max(JobEventRow.seq))) or 0

    def enqueue(self, sub: Subscriber, upto_seq: int, limit: int, now: datetime) -> int:
        """Make deliveries for the events in (last_seq, upto_seq] the webhook's
        owner may see, at most `limit`; move `last_seq` past them. Returns how
        many were made."""
        query = (select(JobEventRow, JobRow.user_name, JobRow.name, JobRow.cluster)
                 .join(JobRow, JobRow.id == JobEventRow.job_id)
                 .where(JobEventRow.seq > sub.last_seq, JobEventRow.seq <= upto_seq))
        if not sub.is_admin:
            query = query.where(JobRow.user_name == sub.user_name)
        found = self.session.execute(query.order_by(JobEventRow.seq).limit(limit)).all()
        if found:
            self.session.execute(insert(WebhookDeliveryRow), [
                {"webhook_id": sub.id, "event_seq": event.seq, "job_id": event.job_id,
                 "payload": _payload(sub.id, event, user_name, name, cluster),
                 "status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}
                for event, user_name, name, cluster in found])
        last = found[-1][0].seq if len(found) == limit else upto_seq
        self.session.execute(update(WebhookRow).where(WebhookRow.id == sub.id)
                             .values(last_seq=last))
        return len(found)

    def due(self, now: datetime, limit: int, busy: Collection[int]) -> list[DueDelivery]:
        """Pending deliveries whose time has come and that are first in their
        job's chain (no earlier pending delivery of the same job to the same
        webhook), leaving out those being sent (`busy`)."""
        earlier = aliased(WebhookDeliveryRow)
        blocked = select(earlier.id).where(
            earlier.webhook_id == WebhookDeliveryRow.webhook_id,
            earlier.job_id == WebhookDeliveryRow.job_id,
            earlier.status == PENDING,
            earlier.event_seq < WebhookDeliveryRow.event_seq,
        ).exists()
        query = (select(WebhookDeliveryRow.id, WebhookDeliveryRow.webhook_id, WebhookRow.url,
                        WebhookRow.secret, WebhookDeliveryRow.payload,
                        WebhookDeliveryRow.attempts)
                 .join(WebhookRow, WebhookRow.id == WebhookDeliveryRow.webhook_id)
                 .where(and_(WebhookDeliveryRow.status == PENDING,
                             WebhookDeliveryRow.next_attempt_at <= now), ~blocked))
        if busy:
            query = query.where(WebhookDeliveryRow.id.not_in(list(busy)))
        # In the index's order: the first due rows end the scan.
        query = query.order_by(WebhookDeliveryRow.next_attempt_at).limit(limit)
        return [DueDelivery(*row) for row in self.session.execute(query)]

    def record(self, outcomes: Sequence[Attempt]) -> None:
        """Write the outcomes of attempts, in one statement (a delivery of a
        deleted webhook is gone: nothing to write)."""
        if outcomes:
            self.session.connection().execute(_RECORD, [a.__dict__ for a in outcomes])


def _payload(webhook_id: int, event: JobEventRow, user_name: str, name: str,
             cluster: str) -> dict[str, Any]:
    return {
        "webhook_id": webhook_id,
        "event": {
            "seq": event.seq, "job_id": event.job_id, "at": event.at.isoformat(),
            "from_state": event.from_state, "to_state": event.to_state,
            "reason": event.reason, "data": event.data,
        },
        "job": {"id": event.job_id, "name": name, "user_name": user_name, "cluster": cluster},
    }


def _delivery(row: WebhookDeliveryRow) -> Delivery:
    return Delivery(
        id=row.id, webhook_id=row.webhook_id, event_seq=row.event_seq, job_id=row.job_id,
        payload=row.payload, status=cast(DeliveryStatus, row.status), attempts=row.attempts,
        next_attempt_at=row.next_attempt_at, last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code, last_error=row.last_error,
        created_at=row.created_at, delivered_at=row.delivered_at,
    )
