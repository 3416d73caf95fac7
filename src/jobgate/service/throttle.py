"""Failed authentications slowed down per client address.

In-process: with `serve --workers N` each worker counts its own failures, so an
address may try up to N times the limit before every worker refuses it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from jobgate.errors import RateLimitedError

# Addresses remembered at most (the oldest are forgotten first): a flood of
# spoofed-looking addresses cannot grow the table without bound.
MAX_ADDRESSES = 10_000


class AuthThrottle:
    """At most `limit` failed authentications per address within `window`
    seconds; past that, every request from the address gets 429 until the
    oldest failure leaves the window. A limit of 0 turns it off."""

    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str | None) -> None:
        """Raises:
        RateLimitedError: `address` failed too often lately; says when to retry.
        """
        if self.limit <= 0 or address is None:
            return
        now = self.clock()
        with self._lock:
            failures = self._recent(address, now)
            if failures is None or len(failures) < self.limit:
                return
            wait = failures[0] + self.window - now
        retry = max(1, math.ceil(wait))
        raise RateLimitedError(
            f"too many failed authentications from {address}: retry in {retry} s",
            retry_after=retry)

    def failed(self, address: str | None) -> None:
        if self.limit <= 0 or address is None:
            return
        now = self.clock()
        with self._lock:
            failures = self._recent(address, now)
            if failures is None:
                if len(self._failures) >= MAX_ADDRESSES:
                    self._failures.pop(next(iter(self._failures)))
                failures = self._failures[address] = deque()
            failures.append(now)
            while len(failures) > self.limit:
                failures.popleft()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures
