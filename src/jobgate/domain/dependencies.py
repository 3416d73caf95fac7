"""Slurm job dependencies: the ``sbatch --dependency`` expression and its verdict.

Pure functions, standard library only. Parsing errors raise
:class:`~jobgate.errors.InvalidSpecError` with field ``"dependencies"``; the caller
loads the referenced jobs (:func:`referenced_ids`) and asks :func:`evaluate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from jobgate.domain.arrays import MAX_ARRAY_INDEX
from jobgate.domain.states import JobState
from jobgate.errors import InvalidSpecError

__all__ = [
    "Condition",
    "Dependencies",
    "DependencyState",
    "JobRef",
    "Kind",
    "evaluate",
    "format_dependencies",
    "parse_dependencies",
    "referenced_ids",
]

FIELD = "dependencies"
Kind = Literal["after", "afterok", "afternotok", "afterany", "singleton"]
_KINDS: dict[str, Kind] = {
    "after": "after", "afterok": "afterok", "afternotok": "afternotok",
    "afterany": "afterany", "singleton": "singleton",
}
_KIND_LIST = "after, afterok, afternotok, afterany or singleton"
# [0-9] rather than \d: \d also matches non-ASCII digits, which int() would accept.
_REF = re.compile(r"([0-9]{1,18})(?:_([0-9]{1,18}))?")


class DependencyState(StrEnum):
    SATISFIED = "satisfied"
    WAITING = "waiting"
    NEVER = "never"


@dataclass(frozen=True)
class JobRef:
    """A job (``123``), or one task of an array job (``123_4``).

    Raises:
        InvalidSpecError: if ``job_id`` is below 1 or ``task`` is outside
            0..MAX_ARRAY_INDEX.
    """

    job_id: int
    task: int | None = None

    def __post_init__(self) -> None:
        if self.job_id < 1:
            raise InvalidSpecError(FIELD, self.job_id, "job ids start at 1")
        if self.task is not None and not 0 <= self.task <= MAX_ARRAY_INDEX:
            raise InvalidSpecError(
                FIELD, self.task, f"array task index must be 0..{MAX_ARRAY_INDEX}"
            )

    def __str__(self) -> str:
        return str(self.job_id) if self.task is None else f"{self.job_id}_{self.task}"


@dataclass(frozen=True)
class Condition:
    """One ``kind:id[:id...]`` item; ``singleton`` has no refs.

    Raises:
        InvalidSpecError: if a singleton has refs or another kind has none.
    """

    kind: Kind
    refs: tuple[JobRef, ...]

    def __post_init__(self) -> None:
        if self.kind == "singleton" and self.refs:
            raise InvalidSpecError(FIELD, str(self), "singleton takes no job ids")
        if self.kind != "singleton" and not self.refs:
            raise InvalidSpecError(FIELD, self.kind, f"give job ids, e.g. {self.kind}:123")

    def __str__(self) -> str:
        return ":".join([self.kind, *map(str, self.refs)])


@dataclass(frozen=True)
class Dependencies:
    """Conditions that must ALL hold (``,``), or of which ANY one suffices (``?``).

    With a single condition ``any_of`` changes nothing; the parser sets it False.

    Raises:
        InvalidSpecError: if there are no conditions.
    """

    conditions: tuple[Condition, ...]
    any_of: bool = False

    def __post_init__(self) -> None:
        if not self.conditions:
            raise InvalidSpecError(FIELD, "", "give at least one condition, e.g. afterok:123")


def parse_dependencies(text: str) -> Dependencies:
    """Parse a Slurm ``--dependency`` expression such as ``afterok:12:13_2,singleton``.

    Type names are matched case-insensitively, as Slurm does; a bare job id means
    ``afterany`` (Slurm's old short form).

    Raises:
        InvalidSpecError: on empty input, whitespace, both ``,`` and ``?``, an empty
            item, an unknown type, a type without ids, ids on ``singleton``, a bad id,
            or the ``after:ID+minutes`` form (not supported yet).
    """
    if not text:
        raise InvalidSpecError(FIELD, text, "empty; give e.g. afterok:123")
    if any(ch.isspace() for ch in text):
        raise InvalidSpecError(FIELD, text, "remove the whitespace; write e.g. afterok:1:2")
    if "," in text and "?" in text:
        raise InvalidSpecError(
            FIELD, text, "use either ',' (all must hold) or '?' (any one suffices), not both"
        )
    any_of = "?" in text
    items = text.split("?" if any_of else ",")
    return Dependencies(tuple(_parse_item(text, item) for item in items), any_of)


def format_dependencies(deps: Dependencies) -> str:
    """The Slurm form of ``deps``; :func:`parse_dependencies` reads it back.

    Raises:
        Nothing: a :class:`Dependencies` is valid by construction.
    """
    return ("?" if deps.any_of else ",").join(map(str, deps.conditions))


def referenced_ids(deps: Dependencies) -> set[int]:
    """The job ids ``deps`` names (array tasks collapse to their array job's id)."""
    return {ref.job_id for cond in deps.conditions for ref in cond.refs}


def evaluate(
    deps: Dependencies,
    states: Mapping[JobRef, Sequence[JobState]],
    singleton_clear: bool,
) -> DependencyState:
    """Whether ``deps`` hold now, may hold later, or never will.

    ``states`` maps each referenced :class:`JobRef` to the states of the jobs it
    stands for: one state for a job or an array task, the states of all tasks for a
    whole array job. ``singleton_clear`` says that no other job with the same name
    and user is active. A ref missing from ``states`` (or mapped to no states) is
    an unknown job and makes its condition NEVER. UNKNOWN counts as not yet ended.

    Raises:
        Nothing.
    """
    verdicts = (_condition(cond, states, singleton_clear) for cond in deps.conditions)
    return _any(verdicts) if deps.any_of else _all(verdicts)


def _parse_item(text: str, item: str) -> Condition:
    if not item:
        raise InvalidSpecError(FIELD, text, "empty item; remove the extra separator")
    if _REF.fullmatch(item):
        # Slurm's legacy form: "--dependency=123" is afterany:123.
        return Condition("afterany", (_parse_ref(text, item),))
    name, _, ids = item.partition(":")
    kind = _KINDS.get(name.lower())
    if kind is None:
        raise InvalidSpecError(FIELD, text, f"unknown type {name!r}; use {_KIND_LIST}")
    if kind == "singleton":
        if ids or ":" in item:
            raise InvalidSpecError(FIELD, text, "singleton takes no job ids; write singleton")
        return Condition(kind, ())
    if not ids:
        raise InvalidSpecError(FIELD, text, f"{name} needs job ids, e.g. {kind}:123")
    return Condition(kind, tuple(_parse_ref(text, ref) for ref in ids.split(":")))


def _parse_ref(text: str, ref: str) -> JobRef:
    if "+" in ref:
        raise InvalidSpecError(
            FIELD, text, "after:ID+time is not supported yet; drop the +time part"
        )
    match = _REF.fullmatch(ref)
    if match is None:
        raise InvalidSpecError(
            FIELD, text, f"{ref!r} is not a job id; use 123, or 123_4 for one array task"
        )
    task = None if match[2] is None else int(match[2])
    # JobRef's own checks name only the number; rethrow with the whole expression.
    try:
        return JobRef(int(match[1]), task)
    except InvalidSpecError as exc:
        raise InvalidSpecError(FIELD, text, f"{ref!r}: {exc.reason}") from exc


def _ref(kind: Kind, found: Sequence[JobState]) -> DependencyState:
    if not found:
        return DependencyState.NEVER
    if kind == "after":
        # UNKNOWN may still be pending for all we know, so it does not count as started.
        started = all(s not in (JobState.PENDING, JobState.UNKNOWN) for s in found)
        return DependencyState.SATISFIED if started else DependencyState.WAITING
    ended = all(s.final for s in found)
    if kind == "afterok":
        if any(s.final and s is not JobState.COMPLETED for s in found):
            return DependencyState.NEVER
    elif kind == "afternotok" and JobState.COMPLETED in found:
        return DependencyState.NEVER
    return DependencyState.SATISFIED if ended else DependencyState.WAITING


def _condition(
    cond: Condition, states: Mapping[JobRef, Sequence[JobState]], singleton_clear: bool
) -> DependencyState:
    if cond.kind == "singleton":
        return DependencyState.SATISFIED if singleton_clear else DependencyState.WAITING
    return _all(_ref(cond.kind, states.get(ref, ())) for ref in cond.refs)


def _all(verdicts: Iterable[DependencyState]) -> DependencyState:
    seen = set(verdicts)
    if DependencyState.NEVER in seen:
        return DependencyState.NEVER
    if seen == {DependencyState.SATISFIED}:
        return DependencyState.SATISFIED
    return DependencyState.WAITING


def _any(verdicts: Iterable[DependencyState]) -> DependencyState:
    seen = set(verdicts)
    if DependencyState.SATISFIED in seen:
        return DependencyState.SATISFIED
    if seen == {DependencyState.NEVER}:
        return DependencyState.NEVER
    return DependencyState.WAITING
