from __future__ import annotations

from collections.abc import Sequence

import pytest

from jobgate.domain.dependencies import (
    Condition,
    Dependencies,
    DependencyState,
    JobRef,
    Kind,
    evaluate,
    format_dependencies,
    parse_dependencies,
    referenced_ids,
)
from jobgate.domain.states import JobState
from jobgate.errors import InvalidSpecError

S = JobState
SAT, WAIT, NEVER = DependencyState.SATISFIED, DependencyState.WAITING, DependencyState.NEVER
A, B = JobRef(1), JobRef(2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("after:1", Dependencies((Condition("after", (A,)),), False)),
        ("afterok:1", Dependencies((Condition("afterok", (A,)),), False)),
        ("afternotok:1", Dependencies((Condition("afternotok", (A,)),), False)),
        ("afterany:1", Dependencies((Condition("afterany", (A,)),), False)),
        ("singleton", Dependencies((Condition("singleton", ()),), False)),
        ("afterok:1:2", Dependencies((Condition("afterok", (A, B)),), False)),
        ("afterok:12_3", Dependencies((Condition("afterok", (JobRef(12, 3),)),), False)),
        ("afterok:12_0:12", Dependencies(
            (Condition("afterok", (JobRef(12, 0), JobRef(12))),), False)),
        ("afterok:1,afternotok:2", Dependencies(
            (Condition("afterok", (A,)), Condition("afternotok", (B,))), False)),
        ("afterok:1?afternotok:2", Dependencies(
            (Condition("afterok", (A,)), Condition("afternotok", (B,))), True)),
        ("afterany:1,singleton", Dependencies(
            (Condition("afterany", (A,)), Condition("singleton", ())), False)),
        ("AfterOK:1", Dependencies((Condition("afterok", (A,)),), False)),
        ("SINGLETON", Dependencies((Condition("singleton", ()),), False)),
        ("1", Dependencies((Condition("afterany", (A,)),), False)),
        ("1?2_5", Dependencies(
            (Condition("afterany", (A,)), Condition("afterany", (JobRef(2, 5),))), True)),
        ("afterok:1:1", Dependencies((Condition("afterok", (A, A)),), False)),
    ],
)
def test_parse(text: str, expected: Dependencies) -> None:
    assert parse_dependencies(text) == expected


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("", "empty"),
        ("afterok: 1", "whitespace"),
        ("afterok:1 ", "whitespace"),
        ("afterok:1,afterok:2?afterok:3", "not both"),
        ("afterok:1,", "empty item"),
        ("?afterok:1", "empty item"),
        ("afterok:1,,afterok:2", "empty item"),
        ("before:1", "unknown type 'before'"),
        ("aftercorr:1", "unknown type"),
        ("expand:1", "unknown type"),
        ("afterok", "needs job ids"),
        ("afterok:", "needs job ids"),
        ("after:", "needs job ids"),
        ("singleton:1", "singleton takes no job ids"),
        ("singleton:", "singleton takes no job ids"),
        ("afterok:x", "not a job id"),
        ("afterok:1:", "not a job id"),
        ("afterok:1::2", "not a job id"),
        ("afterok:-1", "not a job id"),
        ("afterok:1_", "not a job id"),
        ("afterok:1_2_3", "not a job id"),
        ("afterok:1_*", "not a job id"),
        ("afterok:1" + "0" * 30, "not a job id"),
        ("afterok:0", "job ids start at 1"),
        ("afterok:5_4000001", "array task index"),
        ("after:1+5", "after:ID+time is not supported yet"),
        ("afterok:1:2+10", "after:ID+time is not supported yet"),
        ("0", "job ids start at 1"),
    ],
)
def test_errors(text: str, reason_part: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        parse_dependencies(text)
    assert err.value.field == "dependencies"
    assert err.value.value == text
    assert reason_part in err.value.reason


@pytest.mark.parametrize(
    "text",
    [
        "after:1", "afterok:1:2", "afternotok:3_4", "afterany:5,singleton",
        "afterok:1?afternotok:2_0?singleton", "singleton", "afterok:7:7_1:8",
    ],
)
def test_format_round_trip(text: str) -> None:
    deps = parse_dependencies(text)
    assert format_dependencies(deps) == text
    assert parse_dependencies(format_dependencies(deps)) == deps


@pytest.mark.parametrize(
    ("text", "formatted"),
    [("AFTEROK:1", "afterok:1"), ("12", "afterany:12"), ("1?2", "afterany:1?afterany:2")],
)
def test_format_normalises(text: str, formatted: str) -> None:
    assert format_dependencies(parse_dependencies(text)) == formatted


def test_referenced_ids() -> None:
    deps = parse_dependencies("afterok:1:2_3,afterany:2,singleton,after:9")
    assert referenced_ids(deps) == {1, 2, 9}
    assert referenced_ids(parse_dependencies("singleton")) == set()


@pytest.mark.parametrize(
    ("kwargs", "reason_part"),
    [
        ({"job_id": 0}, "start at 1"),
        ({"job_id": 1, "task": -1}, "array task index"),
    ],
)
def test_jobref_checks(kwargs: dict[str, int], reason_part: str) -> None:
    with pytest.raises(InvalidSpecError, match=reason_part):
        JobRef(**kwargs)


def test_condition_and_dependencies_checks() -> None:
    with pytest.raises(InvalidSpecError, match="no job ids"):
        Condition("singleton", (A,))
    with pytest.raises(InvalidSpecError, match="give job ids"):
        Condition("afterok", ())
    with pytest.raises(InvalidSpecError, match="at least one condition"):
        Dependencies((), False)


# Per kind: the states the ref stands for (one for a job, several for an array's
# tasks) and the expected verdict.
TRUTH: list[tuple[Kind, tuple[JobState, ...], DependencyState]] = [
    ("after", (S.PENDING,), WAIT),
    ("after", (S.UNKNOWN,), WAIT),
    ("after", (S.RUNNING,), SAT),
    ("after", (S.SUSPENDED,), SAT),
    ("after", (S.COMPLETING,), SAT),
    ("after", (S.COMPLETED,), SAT),
    ("after", (S.CANCELLED,), SAT),
    ("after", (S.FAILED,), SAT),
    ("after", (S.RUNNING, S.PENDING), WAIT),
    ("after", (S.RUNNING, S.COMPLETED, S.FAILED), SAT),
    ("afterok", (S.PENDING,), WAIT),
    ("afterok", (S.RUNNING,), WAIT),
    ("afterok", (S.COMPLETING,), WAIT),
    ("afterok", (S.UNKNOWN,), WAIT),
    ("afterok", (S.COMPLETED,), SAT),
    ("afterok", (S.FAILED,), NEVER),
    ("afterok", (S.CANCELLED,), NEVER),
    ("afterok", (S.TIMEOUT,), NEVER),
    ("afterok", (S.OUT_OF_MEMORY,), NEVER),
    ("afterok", (S.COMPLETED, S.COMPLETED), SAT),
    ("afterok", (S.COMPLETED, S.RUNNING), WAIT),
    ("afterok", (S.COMPLETED, S.UNKNOWN), WAIT),
    ("afterok", (S.RUNNING, S.FAILED), NEVER),
    ("afterok", (S.COMPLETED, S.NODE_FAIL), NEVER),
    ("afternotok", (S.PENDING,), WAIT),
    ("afternotok", (S.RUNNING,), WAIT),
    ("afternotok", (S.UNKNOWN,), WAIT),
    ("afternotok", (S.COMPLETED,), NEVER),
    ("afternotok", (S.FAILED,), SAT),
    ("afternotok", (S.CANCELLED,), SAT),
    ("afternotok", (S.TIMEOUT,), SAT),
    ("afternotok", (S.FAILED, S.TIMEOUT), SAT),
    ("afternotok", (S.FAILED, S.RUNNING), WAIT),
    ("afternotok", (S.FAILED, S.COMPLETED), NEVER),
    ("afternotok", (S.RUNNING, S.COMPLETED), NEVER),
    ("afterany", (S.PENDING,), WAIT),
    ("afterany", (S.RUNNING,), WAIT),
    ("afterany", (S.UNKNOWN,), WAIT),
    ("afterany", (S.COMPLETED,), SAT),
    ("afterany", (S.FAILED,), SAT),
    ("afterany", (S.PREEMPTED,), SAT),
    ("afterany", (S.COMPLETED, S.FAILED, S.CANCELLED), SAT),
    ("afterany", (S.COMPLETED, S.RUNNING), WAIT),
]


@pytest.mark.parametrize(("kind", "found", "expected"), TRUTH)
def test_truth_table(
    kind: Kind, found: tuple[JobState, ...], expected: DependencyState
) -> None:
    deps = Dependencies((Condition(kind, (A,)),), False)
    assert evaluate(deps, {A: found}, singleton_clear=False) is expected
    # A list works as well as a tuple, and ALL/ANY agree on a single condition.
    assert evaluate(deps, {A: list(found)}, singleton_clear=True) is expected
    either = Dependencies(deps.conditions, True)
    assert evaluate(either, {A: found}, singleton_clear=False) is expected


def test_every_state_is_covered_for_every_kind() -> None:
    # Guards against a state added later being left unclassified: an ended job never
    # leaves a condition waiting, and a job not yet ended only satisfies "after".
    for kind in ("after", "afterok", "afternotok", "afterany"):
        for state in JobState:
            deps = Dependencies((Condition(kind, (A,)),), False)
            result = evaluate(deps, {A: (state,)}, singleton_clear=False)
            if state.final:
                assert result is not WAIT, (kind, state)
            elif kind == "after" and state not in (S.PENDING, S.UNKNOWN):
                assert result is SAT, (kind, state)
            else:
                assert result is WAIT, (kind, state)


def test_array_task_and_whole_array_are_separate_refs() -> None:
    task, whole = JobRef(7, 2), JobRef(7)
    deps = parse_dependencies("afterok:7_2")
    states: dict[JobRef, Sequence[JobState]] = {
        task: (S.COMPLETED,), whole: (S.COMPLETED, S.FAILED, S.COMPLETED),
    }
    assert evaluate(deps, states, False) is SAT
    assert evaluate(parse_dependencies("afterok:7"), states, False) is NEVER
    assert evaluate(parse_dependencies("afterany:7"), states, False) is SAT


@pytest.mark.parametrize(
    ("text", "states", "expected"),
    [
        ("afterok:1", {}, NEVER),
        ("afterok:1", {A: ()}, NEVER),
        ("after:1:2", {A: (S.RUNNING,)}, NEVER),
        ("afterany:1_3", {A: (S.COMPLETED,)}, NEVER),
        ("afterok:1?afterany:2", {A: (S.RUNNING,)}, WAIT),
        ("afterok:1?afterany:2", {A: (S.COMPLETED,)}, SAT),
        ("afterok:1?afterany:2", {B: (S.FAILED,)}, SAT),
        ("afterok:1,afterany:2", {B: (S.FAILED,)}, NEVER),
    ],
)
def test_unknown_refs_are_never(
    text: str, states: dict[JobRef, Sequence[JobState]], expected: DependencyState
) -> None:
    assert evaluate(parse_dependencies(text), states, False) is expected


@pytest.mark.parametrize(
    ("a", "b", "all_of", "any_of"),
    [
        ((S.COMPLETED,), (S.COMPLETED,), SAT, SAT),
        ((S.COMPLETED,), (S.RUNNING,), WAIT, SAT),
        ((S.COMPLETED,), (S.FAILED,), NEVER, SAT),
        ((S.RUNNING,), (S.RUNNING,), WAIT, WAIT),
        ((S.RUNNING,), (S.FAILED,), NEVER, WAIT),
        ((S.FAILED,), (S.CANCELLED,), NEVER, NEVER),
    ],
)
def test_all_versus_any(
    a: tuple[JobState, ...], b: tuple[JobState, ...],
    all_of: DependencyState, any_of: DependencyState,
) -> None:
    states = {A: a, B: b}
    assert evaluate(parse_dependencies("afterok:1,afterok:2"), states, False) is all_of
    assert evaluate(parse_dependencies("afterok:1?afterok:2"), states, False) is any_of
    # Several ids in one condition must all hold, like ',' between conditions.
    assert evaluate(parse_dependencies("afterok:1:2"), states, False) is all_of


@pytest.mark.parametrize(
    ("text", "clear", "expected"),
    [
        ("singleton", True, SAT),
        ("singleton", False, WAIT),
        ("afterok:1,singleton", True, SAT),
        ("afterok:1,singleton", False, WAIT),
        ("afternotok:1,singleton", True, NEVER),
        ("afternotok:1?singleton", True, SAT),
        ("afternotok:1?singleton", False, WAIT),
        ("afterok:1?singleton", False, SAT),
    ],
)
def test_singleton(text: str, clear: bool, expected: DependencyState) -> None:
    # Job 1 completed in every case.
    assert evaluate(parse_dependencies(text), {A: (S.COMPLETED,)}, clear) is expected
