"""Slurm job arrays: the ``sbatch --array`` expression and its compact form.

Pure functions, standard library only. Every bad value raises
:class:`~jobgate.errors.InvalidSpecError` with field ``"array"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobgate.errors import InvalidSpecError

__all__ = [
    "MAX_ARRAY_INDEX",
    "MAX_ARRAY_TASKS",
    "ArraySpec",
    "format_array",
    "parse_array",
]

FIELD = "array"
MAX_ARRAY_TASKS = 10001
MAX_ARRAY_INDEX = 4_000_000
# The throttle is stored as a plain integer column; anything larger means "no limit"
# in practice, so refusing it costs nothing and keeps the value storable.
_MAX_THROTTLE = 2**31 - 1
# Slurm merges repeated indices, but each repeat still costs work; bounding what an
# expression may list (repeats included) keeps a hostile one from burning CPU.
_MAX_LISTED = 10 * MAX_ARRAY_TASKS

_SYNTAX = (
    "not an array expression; use comma-separated N, N-M or N-M:S items "
    "with an optional %T suffix, e.g. 0-99 or 1,3,5 or 0-15:4%2"
)
# [0-9] rather than \d: \d also matches non-ASCII digits, which int() would accept.
_ITEM = re.compile(r"([0-9]+)(?:-([0-9]+)(?::([0-9]+))?)?")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ArraySpec:
    """The task indices of a job array and how many of them may run at once.

    ``indices`` are sorted ascending and unique; ``throttle`` is Slurm's ``%T``
    (``None``: no limit of its own).

    Raises:
        InvalidSpecError: if built directly with indices or a throttle that
            :func:`parse_array` would refuse.
    """

    indices: tuple[int, ...]
    throttle: int | None = None

    def __post_init__(self) -> None:
        # Checked here too so that a spec built in code is as sound as a parsed one
        # (format_array relies on it).
        if not self.indices:
            raise InvalidSpecError(FIELD, self.indices, "an array needs at least one index")
        if any(b <= a for a, b in zip(self.indices, self.indices[1:], strict=False)):
            raise InvalidSpecError(FIELD, self.indices, "indices must be sorted and unique")
        _check_bounds(self.indices[0], self.indices[-1], len(self.indices), self.indices)
        if self.throttle is not None:
            _check_throttle(self.throttle, self.throttle)

    @property
    def count(self) -> int:
        """Number of tasks in the array."""
        return len(self.indices)

    @property
    def min(self) -> int:
        """Smallest task index."""
        return self.indices[0]

    @property
    def max(self) -> int:
        """Largest task index."""
        return self.indices[-1]


def parse_array(text: str) -> ArraySpec:
    """Parse a Slurm ``--array`` expression such as ``0-15:4,20%2``.

    Items are ``N``, ``N-M`` or ``N-M:S`` (step S >= 1), separated by commas; a
    trailing ``%T`` lets at most T tasks run at once. Repeated indices are merged,
    as Slurm does.

    Raises:
        InvalidSpecError: on empty input, whitespace, anything but digits and the
            separators, negative indices, ``N > M``, a zero step or throttle, more
            than :data:`MAX_ARRAY_TASKS` indices, or an index above
            :data:`MAX_ARRAY_INDEX`.
    """
    if not text:
        raise InvalidSpecError(FIELD, text, "empty; give indices such as 0-99")
    if any(ch.isspace() for ch in text):
        raise InvalidSpecError(FIELD, text, "remove the whitespace; write e.g. 1,3,5")
    body, percent, throttle_text = text.partition("%")
    throttle = _parse_throttle(text, throttle_text) if percent else None
    if not body:
        raise InvalidSpecError(FIELD, text, "no indices before %; give e.g. 0-99%10")
    ranges = [_parse_item(text, item) for item in body.split(",")]
    listed = sum(len(r) for r in ranges)
    if listed > _MAX_LISTED:
        raise InvalidSpecError(
            FIELD, text, f"lists {listed} indices counting repeats; list each index once"
        )
    merged: set[int] = set()
    for r in ranges:
        merged.update(r)
    indices = tuple(sorted(merged))
    _check_bounds(indices[0], indices[-1], len(indices), text)
    return ArraySpec(indices, throttle)


def format_array(spec: ArraySpec) -> str:
    """The compact Slurm form of ``spec``, e.g. ``0-3,7,9-11%2``.

    Runs of consecutive indices become ``N-M`` and evenly spaced runs of three or
    more become ``N-M:S``; :func:`parse_array` reads the result back to ``spec``.

    Raises:
        Nothing: an :class:`ArraySpec` is valid by construction.
    """
    idx = spec.indices
    parts: list[str] = []
    i = 0
    while i < len(idx):
        j = i
        if i + 1 < len(idx):
            step = idx[i + 1] - idx[i]
            j = i + 1
            while j + 1 < len(idx) and idx[j + 1] - idx[j] == step:
                j += 1
            # A stepped pair ("0-4:4") is longer than listing both ("0,4").
            if step != 1 and j - i < 2:
                j = i
        if j == i:
            parts.append(str(idx[i]))
        elif idx[j] - idx[i] == j - i:
            parts.append(f"{idx[i]}-{idx[j]}")
        else:
            parts.append(f"{idx[i]}-{idx[j]}:{idx[i + 1] - idx[i]}")
        i = j + 1
    text = ",".join(parts)
    return text if spec.throttle is None else f"{text}%{spec.throttle}"


def _number(text: str, digits: str) -> int:
    # Bounded before int(): a few thousand digits would make int() itself raise
    # ValueError (and cost time), and anything this long is over every limit anyway.
    if len(digits) > 12:
        raise InvalidSpecError(FIELD, text, f"{digits[:12]}... is far too large")
    return int(digits)


def _parse_throttle(text: str, throttle_text: str) -> int:
    if not _DIGITS.fullmatch(throttle_text):
        raise InvalidSpecError(
            FIELD, text, "after % give the number of tasks that may run at once, e.g. 0-99%10"
        )
    throttle = _number(text, throttle_text)
    _check_throttle(throttle, text)
    return throttle


def _check_throttle(throttle: int, value: object) -> None:
    if throttle < 1:
        raise InvalidSpecError(FIELD, value, "the %T throttle must be at least 1")
    if throttle > _MAX_THROTTLE:
        raise InvalidSpecError(FIELD, value, f"the %T throttle must be at most {_MAX_THROTTLE}")


def _parse_item(text: str, item: str) -> range:
    if not item:
        raise InvalidSpecError(FIELD, text, "empty item; remove the extra comma")
    if item.startswith("-"):
        raise InvalidSpecError(FIELD, text, f"{item!r}: indices cannot be negative")
    match = _ITEM.fullmatch(item)
    if match is None:
        raise InvalidSpecError(FIELD, text, f"{item!r}: {_SYNTAX}")
    first = _number(text, match[1])
    last = first if match[2] is None else _number(text, match[2])
    step = 1 if match[3] is None else _number(text, match[3])
    if step < 1:
        raise InvalidSpecError(FIELD, text, f"{item!r}: the step must be at least 1")
    if first > last:
        raise InvalidSpecError(FIELD, text, f"{item!r}: write the range low-high, e.g. 0-9")
    # Checked before the range is ever expanded, so "0-4000000" costs nothing.
    _check_bounds(first, last, (last - first) // step + 1, text)
    return range(first, last + 1, step)


def _check_bounds(low: int, high: int, count: int, value: object) -> None:
    if low < 0:
        raise InvalidSpecError(FIELD, value, "indices cannot be negative")
    if high > MAX_ARRAY_INDEX:
        raise InvalidSpecError(
            FIELD, value, f"index {high} is above the largest allowed, MAX_ARRAY_INDEX="
            f"{MAX_ARRAY_INDEX}"
        )
    if count > MAX_ARRAY_TASKS:
        raise InvalidSpecError(
            FIELD, value, f"{count} tasks is more than the limit, MAX_ARRAY_TASKS="
            f"{MAX_ARRAY_TASKS}; split the array or use a step"
        )
