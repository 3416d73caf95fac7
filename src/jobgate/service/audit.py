"""The audit log: every state-changing API call, who made it, for whom, from where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from jobgate.errors import InvalidSpecError
from jobgate.store.audit import AuditEntry, AuditFilter, read_entries, write_entries
from jobgate.store.jobs import decode_cursor, encode_cursor

MAX_PAGE = 1000
# Methods that change state (GET, HEAD and OPTIONS only read).
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditLog:
    def __init__(self, db: Engine) -> None:
        self.db = db

    def record(self, entry: AuditEntry) -> None:
        """Write one entry in its own short transaction (plain Core, no ORM
        session: the session's after-commit hooks wake event waiters)."""
        with self.db.begin() as conn:
            write_entries(conn, [entry])

    def read(self, filters: AuditFilter, *, limit: int = 100, cursor: str | None = None
             ) -> tuple[list[AuditEntry], str | None]:
        """A page, newest first, and the cursor of the next one (None at the end).

        Raises:
            InvalidSpecError: a bad limit or cursor.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidSpecError("limit", limit, f"must be between 1 and {MAX_PAGE}")
        before = decode_cursor(cursor) if cursor else None
        with self.db.connect() as conn:
            entries = read_entries(conn, filters, limit=limit + 1, before_id=before)
        page = entries[:limit]
        return page, encode_cursor(page[-1].id) if len(entries) > limit else None


def entry(at: datetime, actor: str | None, on_behalf_of: str | None, method: str, path: str,
          status: int, address: str | None) -> AuditEntry:
    return AuditEntry(at=at, actor=actor, on_behalf_of=on_behalf_of, method=method,
                      path=path[:2000], status=status, address=address)
