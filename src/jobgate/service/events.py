"""Push: wake whoever waits for the ledger's next events (long-poll, SSE, waits).

The event log in the store is the truth; this only says "look again". Every
commit of this process rings the bus (a commit may have written events); a
waiter registers before it reads the log, so nothing committed between its read
and its wait is missed. Commits of other processes on the same store are found
by the waiters' periodic re-reads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

# Waiters re-read the log at least this often, for other processes' commits.
RECHECK_SECONDS = 1.0


class Ticket:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.rung = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        """True when the bus rang, False when `timeout` passed first."""
        try:
            await asyncio.wait_for(self.rung.wait(), timeout)
        except TimeoutError:
            return False
        return True


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: set[Ticket] = set()

    def ring(self) -> None:
        """Called from any thread after a commit."""
        with self._lock:
            tickets = list(self._tickets)
        for ticket in tickets:
            with suppress(RuntimeError):  # its loop has closed: nobody is waiting
                ticket.loop.call_soon_threadsafe(ticket.rung.set)

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[Ticket]:
        """Register, then read the log, then wait on the ticket if nothing was new."""
        ticket = Ticket()
        with self._lock:
            self._tickets.add(ticket)
        try:
            yield ticket
        finally:
            with self._lock:
                self._tickets.discard(ticket)
