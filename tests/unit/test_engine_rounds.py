"""How often the engine's deep (backfill) rounds run."""

from __future__ import annotations

import pytest

from jobgate.service.engine import BACKFILL_INTERVAL, DEEP_ROUND_SHARE, next_deep_round


def test_a_cheap_deep_round_is_followed_by_the_next_one_a_backfill_interval_later() -> None:
    assert next_deep_round(100.0, 0.002) == pytest.approx(100.0 + BACKFILL_INTERVAL)


def test_a_costly_deep_round_takes_at_most_its_share_of_the_engines_time() -> None:
    # 92 ms: a deep round with 50,000 jobs pending on this machine.
    due = next_deep_round(100.0, 0.092)
    assert due == pytest.approx(100.0 + 0.092 / DEEP_ROUND_SHARE)
    assert 0.092 / (due - 100.0) == pytest.approx(DEEP_ROUND_SHARE)
