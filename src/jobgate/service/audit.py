"""The audit log: every state-changing API call, who made it, for whom, from where."""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime

from sqlalchemy import Engine

from jobgate.errors import InvalidSpecError
from jobgate.store.audit import AuditEntry, AuditFilter, read_entries, write_entries
from jobgate.store.jobs import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

MAX_PAGE = 1000
# Methods that change state (GET, HEAD and OPTIONS only read).
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Entries wait in memory at most this long (seconds) before one insert writes
# them all: a transaction per call would cost every submit a second turn at
# SQLite's single write lock.
FLUSH_INTERVAL = 0.05
# Entries kept while the store refuses them (the oldest are dropped past this).
MAX_PENDING = 100_000


class AuditLog:
    """Entries are buffered and written by a background thread every
    FLUSH_INTERVAL in one executemany; `stop()` writes what is left. A process
    killed outright (SIGKILL, power loss) loses the entries of its last
    interval. Before `start()` (or after `stop()`) each entry is written at once.
    """

    def __init__(self, db: Engine, interval: float = FLUSH_INTERVAL) -> None:
        self.db = db
        self.interval = interval
        self._pending: list[AuditEntry] = []
        self._lock = threading.Lock()          # guards _pending
        self._writing = threading.Lock()       # one flush at a time: ids keep call order
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="audit-flush", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write every entry still buffered."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join()
        self.flush()

    def record(self, entry: AuditEntry) -> None:
        """Queue one entry (written within FLUSH_INTERVAL; at once when not started)."""
        with self._lock:
            self._pending.append(entry)
        if self._thread is None:
            self.flush()

    def flush(self) -> None:
        """Write the buffered entries in one transaction (plain Core, no ORM
        session: the session's after-commit hooks wake event waiters). On a
        store error they stay buffered for the next try."""
        with self._writing:
            with self._lock:
                entries, self._pending = self._pending, []
            if not entries:
                return
            try:
                with self.db.begin() as conn:
                    write_entries(conn, entries)
            except Exception:
                with self._lock:
                    self._pending[:0] = entries
                    dropped = len(self._pending) - MAX_PENDING
                    if dropped > 0:
                        del self._pending[:dropped]
                log.exception("audit log: %d entries not written yet%s", len(entries),
                              f" ({dropped} oldest dropped)" if dropped > 0 else "")
                if self._thread is None:
                    raise

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            # Logged in flush; the entries are tried again next interval.
            with contextlib.suppress(Exception):
                self.flush()

    def read(self, filters: AuditFilter, *, limit: int = 100, cursor: str | None = None
             ) -> tuple[list[AuditEntry], str | None]:
        """A page, newest first, and the cursor of the next one (None at the end).

        Raises:
            InvalidSpecError: a bad limit or cursor.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidSpecError("limit", limit, f"must be between 1 and {MAX_PAGE}")
        before = decode_cursor(cursor) if cursor else None
        self.flush()  # an admin reads the calls made until now, their own included
        with self.db.connect() as conn:
            entries = read_entries(conn, filters, limit=limit + 1, before_id=before)
        page = entries[:limit]
        return page, encode_cursor(page[-1].id) if len(entries) > limit else None


def entry(at: datetime, actor: str | None, on_behalf_of: str | None, method: str, path: str,
          status: int, address: str | None) -> AuditEntry:
    return AuditEntry(at=at, actor=actor, on_behalf_of=on_behalf_of, method=method,
                      path=path[:2000], status=status, address=address)
