"""Which failures the SDK tries again, and how long it waits in between.

A request is tried again only when doing so cannot act twice:

- the connection was never made (refused, DNS, connect timeout): nothing was sent;
- the gateway said "too many requests" (429) or "not now" (502, 503, 504)
  before doing anything - for a request that changes nothing (GET, HEAD) or
  that carries an `Idempotency-Key`, so that a repeat returns the first answer;
- the answer was lost on the way (read timeout, dropped connection) for those
  same safe requests.

A submit always carries an `Idempotency-Key` (the SDK makes one when the caller
gives none), so a retried submit never makes a second job.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from jobgate.errors import JobgateError, RateLimitedError, ServerError

__all__ = ["RetryPolicy"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` extra tries, waiting `base` x 2**n seconds (jittered, at most
    `cap`); a 429's Retry-After is honoured up to `cap`."""

    retries: int = 3
    base: float = 0.25
    cap: float = 10.0

    def delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait before try number `attempt` + 1 (attempt counts from 0)."""
        if isinstance(error, RateLimitedError) and error.retry_after > 0:
            return float(min(error.retry_after, self.cap))
        wait: float = min(self.cap, self.base * (2 ** attempt))
        return wait * (0.5 + random.random() / 2)  # jitter: clients do not stampede

    def should_retry(self, attempt: int, method: str, keyed: bool,
                     error: BaseException) -> bool:
        """Whether a failed try may be repeated (see the module's rules)."""
        if attempt >= self.retries:
            return False
        safe = method.upper() in _SAFE_METHODS or keyed
        if isinstance(error, _NOT_SENT):
            return True
        if isinstance(error, RateLimitedError):
            return True  # refused before anything was done
        if isinstance(error, httpx.TransportError):
            return safe
        if isinstance(error, ServerError):
            return safe
        if isinstance(error, JobgateError):
            return False
        return False
