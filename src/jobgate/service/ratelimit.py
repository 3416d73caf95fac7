"""A token bucket per user for submissions: a burst, then a steady rate."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobgate.errors import RateLimitedError


@dataclass
class _Bucket:
    tokens: float
    at: float


class SubmitRateLimit:
    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, user: str) -> None:
        """Spend one submission of `user`'s allowance.

        Raises:
            RateLimitedError: none left; `retry_after` says when one will be.
        """
        if self.rate <= 0:
            return  # no limit configured
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault(user, _Bucket(float(self.burst), now))
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return
            wait = (1 - bucket.tokens) / self.rate
        raise RateLimitedError(
            f"too many submissions: at most {self.rate:g} a second after a burst of "
            f"{self.burst}; retry in {math.ceil(wait)} s", retry_after=math.ceil(wait))
