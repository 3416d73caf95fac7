from __future__ import annotations

import itertools

import pytest

from jobgate.domain.states import FINAL_STATES, JobState, can_transition

S = JobState

ALLOWED = {
    (S.PENDING, S.RUNNING), (S.PENDING, S.CANCELLED), (S.PENDING, S.FAILED),
    (S.PENDING, S.DEADLINE), (S.PENDING, S.BOOT_FAIL), (S.PENDING, S.NODE_FAIL),
    (S.PENDING, S.UNKNOWN),
    *((S.RUNNING, s) for s in FINAL_STATES),
    (S.RUNNING, S.SUSPENDED), (S.RUNNING, S.COMPLETING), (S.RUNNING, S.UNKNOWN),
    (S.RUNNING, S.PENDING),
    *((S.SUSPENDED, s) for s in FINAL_STATES),
    (S.SUSPENDED, S.RUNNING), (S.SUSPENDED, S.UNKNOWN), (S.SUSPENDED, S.PENDING),
    *((S.COMPLETING, s) for s in FINAL_STATES),
    (S.COMPLETING, S.UNKNOWN),
    *((S.UNKNOWN, s) for s in S if s not in (S.UNKNOWN, S.PENDING)),
}


def test_fourteen_states_and_nine_final() -> None:
    assert len(S) == 14
    assert {s for s in S if s.final} == {
        S.COMPLETED, S.CANCELLED, S.FAILED, S.TIMEOUT, S.NODE_FAIL, S.PREEMPTED,
        S.BOOT_FAIL, S.DEADLINE, S.OUT_OF_MEMORY,
    }
    assert not S.UNKNOWN.final
    assert S.PENDING.active and S.RUNNING.active and not S.UNKNOWN.active


@pytest.mark.parametrize(("current", "new"), list(itertools.product(S, S)))
def test_every_pair(current: JobState, new: JobState) -> None:
    assert can_transition(current, new) == ((current, new) in ALLOWED)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(S, S)))
def test_requeue_only_adds_moves_back_to_pending(current: JobState, new: JobState) -> None:
    expected = (current, new) in ALLOWED or (new is S.PENDING and current is not S.PENDING)
    assert can_transition(current, new, requeue=True) == expected


def test_final_states_never_move_without_requeue() -> None:
    for final, other in itertools.product(FINAL_STATES, S):
        assert not can_transition(final, other)
