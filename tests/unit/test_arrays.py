from __future__ import annotations

import pytest

from jobgate.domain.arrays import (
    MAX_ARRAY_INDEX,
    MAX_ARRAY_TASKS,
    ArraySpec,
    format_array,
    parse_array,
)
from jobgate.errors import InvalidSpecError


@pytest.mark.parametrize(
    ("text", "indices", "throttle"),
    [
        ("0", (0,), None),
        ("7", (7,), None),
        ("0-3", (0, 1, 2, 3), None),
        ("1,3,5", (1, 3, 5), None),
        ("0-15:4", (0, 4, 8, 12), None),
        ("0-12:4", (0, 4, 8, 12), None),
        ("0-3:10", (0,), None),
        ("0-7%2", tuple(range(8)), 2),
        ("1-3,10", (1, 2, 3, 10), None),
        ("5%1", (5,), 1),
        ("3-3", (3,), None),
        ("10,1-3", (1, 2, 3, 10), None),
        ("0-4,2-6", tuple(range(7)), None),
        ("1,1,1", (1,), None),
        ("007", (7,), None),
        ("0-9:3,1-9:3%4", (0, 1, 3, 4, 6, 7, 9), 4),
        (f"{MAX_ARRAY_INDEX}", (MAX_ARRAY_INDEX,), None),
        (f"0-{MAX_ARRAY_TASKS - 1}", tuple(range(MAX_ARRAY_TASKS)), None),
        (f"0-{MAX_ARRAY_INDEX}:400", tuple(range(0, MAX_ARRAY_INDEX + 1, 400)), None),
    ],
)
def test_parse(text: str, indices: tuple[int, ...], throttle: int | None) -> None:
    spec = parse_array(text)
    assert spec == ArraySpec(indices, throttle)
    assert (spec.count, spec.min, spec.max) == (len(indices), indices[0], indices[-1])


def test_hundred_tasks() -> None:
    spec = parse_array("0-99")
    assert (spec.count, spec.min, spec.max, spec.throttle) == (100, 0, 99, None)


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("", "empty"),
        ("0- 3", "whitespace"),
        (" 0-3", "whitespace"),
        ("0-3\n", "whitespace"),
        ("-1", "negative"),
        ("0,-2", "negative"),
        ("0--3", "not an array expression"),
        ("5-3", "low-high"),
        ("0-9:0", "step must be at least 1"),
        ("a", "not an array expression"),
        ("1-b", "not an array expression"),
        ("+1", "not an array expression"),
        ("1.5", "not an array expression"),
        ("5:2", "not an array expression"),
        ("0-9:2:3", "not an array expression"),
        ("٣", "not an array expression"),
        ("1,,2", "extra comma"),
        ("1,", "extra comma"),
        (",1", "extra comma"),
        ("0-7%0", "at least 1"),
        ("0-7%", "after %"),
        ("0-7%x", "after %"),
        ("0-7%-1", "after %"),
        ("0-7%2%3", "after %"),
        ("%4", "no indices"),
        (f"0-7%{2**31}", "at most"),
        (f"0-{MAX_ARRAY_TASKS}", "MAX_ARRAY_TASKS"),
        (f"0-5000,5001-{MAX_ARRAY_TASKS}", "MAX_ARRAY_TASKS"),
        (f"{MAX_ARRAY_INDEX + 1}", "MAX_ARRAY_INDEX"),
        (f"0-{MAX_ARRAY_INDEX + 1}:1000", "MAX_ARRAY_INDEX"),
        ("9" * 5000, "far too large"),
        ("0-1%" + "9" * 5000, "far too large"),
        (",".join(["0-10000"] * 11), "counting repeats"),
    ],
)
def test_errors(text: str, reason_part: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        parse_array(text)
    assert err.value.field == "array"
    assert err.value.value == text
    assert reason_part in err.value.reason


def test_repeats_within_the_bound_are_merged() -> None:
    assert parse_array(",".join(["0-10000"] * 10)).count == MAX_ARRAY_TASKS


@pytest.mark.parametrize(
    ("indices", "throttle", "text"),
    [
        ((0, 1, 2, 3, 7, 9, 10, 11), 2, "0-3,7,9-11%2"),
        ((5,), None, "5"),
        ((0, 1), None, "0-1"),
        ((0, 4), None, "0,4"),
        ((0, 4, 8, 12), None, "0-12:4"),
        ((0, 1, 2, 4, 6, 8), None, "0-2,4-8:2"),
        ((0, 2, 3, 4), None, "0,2-4"),
        ((1, 3, 5, 6), 3, "1-5:2,6%3"),
        (tuple(range(100)), None, "0-99"),
    ],
)
def test_format(indices: tuple[int, ...], throttle: int | None, text: str) -> None:
    spec = ArraySpec(indices, throttle)
    assert format_array(spec) == text
    assert parse_array(text) == spec


@pytest.mark.parametrize(
    "text",
    [
        "0-99", "1,3,5", "0-15:4", "0-7%2", "1-3,10", "0-9:3,1-9:3%4", "3,1,2,9,7,5",
        "0,1,5,6,7,20-40:5,41,1000-1010%7", f"0-{MAX_ARRAY_INDEX}:400",
        "0,10,11,30,31,32,33,100-130:3",
    ],
)
def test_round_trip(text: str) -> None:
    spec = parse_array(text)
    assert parse_array(format_array(spec)) == spec


def test_round_trip_many_shapes() -> None:
    # Every subset of 0..9: small enough to be exhaustive, covers all run shapes.
    for mask in range(1, 1 << 10):
        spec = ArraySpec(tuple(i for i in range(10) if mask >> i & 1))
        assert parse_array(format_array(spec)) == spec, spec


@pytest.mark.parametrize(
    ("indices", "throttle"),
    [
        ((), None),
        ((2, 1), None),
        ((1, 1), None),
        ((-1, 0), None),
        ((MAX_ARRAY_INDEX + 1,), None),
        (tuple(range(MAX_ARRAY_TASKS + 1)), None),
        ((0,), 0),
    ],
)
def test_direct_construction_is_checked(indices: tuple[int, ...], throttle: int | None) -> None:
    with pytest.raises(InvalidSpecError) as err:
        ArraySpec(indices, throttle)
    assert err.value.field == "array"
