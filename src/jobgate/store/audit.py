"""The audit log: one row per state-changing API call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select

from jobgate.store.tables import Base

AUDIT = Base.metadata.tables["audit_log"]


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str | None
    on_behalf_of: str | None
    method: str
    path: str
    status: int
    address: str | None
    id: int = 0


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    on_behalf_of: str | None = None
    method: str | None = None
    path_prefix: str | None = None
    status: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def write_entries(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    """Insert entries (a Core insert: the audit log bypasses the ORM session and
    its after-commit hooks, which wake event waiters)."""
    if entries:
        conn.execute(insert(AUDIT), [
            {key: getattr(entry, key) for key in
             ("at", "actor", "on_behalf_of", "method", "path", "status", "address")}
            for entry in entries])


def read_entries(conn: Connection, filters: AuditFilter, *, limit: int,
                 before_id: int | None = None) -> list[AuditEntry]:
    """Newest first; `before_id` continues a page that ended at that id."""
    c = AUDIT.c
    query = select(AUDIT).order_by(c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(c.id < before_id)
    if filters.actor is not None:
        query = query.where(c.actor == filters.actor)
    if filters.on_behalf_of is not None:
        query = query.where(c.on_behalf_of == filters.on_behalf_of)
    if filters.method is not None:
        query = query.where(c.method == filters.method.upper())
    if filters.path_prefix is not None:
        query = query.where(c.path.startswith(filters.path_prefix, autoescape=True))
    if filters.status is not None:
        query = query.where(c.status == filters.status)
    if filters.since is not None:
        query = query.where(c.at >= filters.since)
    if filters.until is not None:
        query = query.where(c.at < filters.until)
    return [AuditEntry(**row) for row in conn.execute(query).mappings()]
