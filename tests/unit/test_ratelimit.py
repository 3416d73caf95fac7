from __future__ import annotations

import pytest

from jobgate.errors import RateLimitedError
from jobgate.service.ratelimit import SubmitRateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate_per_user() -> None:
    clock = Clock()
    limit = SubmitRateLimit(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limit.take("ana")
    with pytest.raises(RateLimitedError) as err:
        limit.take("ana")
    assert err.value.retry_after == 1
    limit.take("bob")  # another user has a bucket of their own
    clock.now += 0.5  # one token back at 2 a second
    limit.take("ana")
    with pytest.raises(RateLimitedError):
        limit.take("ana")
    clock.now += 100  # refills, but never beyond the burst
    for _ in range(3):
        limit.take("ana")
    with pytest.raises(RateLimitedError):
        limit.take("ana")


def test_zero_rate_means_no_limit() -> None:
    limit = SubmitRateLimit(rate=0, burst=0)
    for _ in range(1000):
        limit.take("ana")
