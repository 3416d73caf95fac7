"""Parsers for Slurm-style durations, memory sizes and ``#SBATCH`` directives.

Pure functions, standard library only. Every bad value raises
:class:`~jobgate.errors.InvalidSpecError` naming the JobSpec field it was meant for.
"""

from __future__ import annotations

import math
import re
import shlex
import signal
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from jobgate.domain.sbatch_names import export_environment
from jobgate.errors import InvalidSpecError

__all__ = [
    "format_duration",
    "parse_duration",
    "parse_memory",
    "parse_sbatch_directives",
]

_TIME_REASON = "not a time; use seconds or Slurm's [D-]H:M:S, M:S, M, D-H, D-H:M, or D.HH:MM:SS"
_MEM_REASON = "not a size; use a whole number of MiB or a number with K, M, G or T"
_UNLIMITED = frozenset({"UNLIMITED", "INFINITE"})

# [0-9] rather than \d: \d also matches non-ASCII digits, which int() would accept.
_NUM = "([0-9]+)"
_DAYS_DASH = re.compile(rf"{_NUM}-{_NUM}(?::{_NUM}(?::{_NUM})?)?")
_DAYS_DOT = re.compile(rf"{_NUM}\.{_NUM}:{_NUM}:{_NUM}")
_CLOCK = re.compile(rf"{_NUM}(?::{_NUM}(?::{_NUM})?)?")
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(?:([KMGT])(?:I?B)?)?", re.IGNORECASE)
_MIB_PER_UNIT = {
    "K": Fraction(1, 1024),
    "M": Fraction(1),
    "G": Fraction(1024),
    "T": Fraction(1024 * 1024),
}
_INT = re.compile(r"[0-9]+")


def _combine(field: str, value: object, parts: list[int], units: list[int]) -> int:
    """Sum ``parts`` weighted by ``units`` (seconds each), checking ranges."""
    # Only the leading component may overflow (Slurm reads "90:00" as 90 minutes and
    # "48:00:00" as two days); the rest must fit their unit so "1:75" is caught.
    total = parts[0] * units[0]
    for part, unit, bigger in zip(parts[1:], units[1:], units[:-1], strict=True):
        if part >= bigger // unit:
            raise InvalidSpecError(field, value, _TIME_REASON)
        total += part * unit
    return total


def parse_duration(value: str | int | float, field: str = "time_limit") -> int | None:
    """Parse a time limit into seconds; ``None`` means unlimited.

    Numbers are seconds; a bare number in a string is minutes, as in Slurm.

    Raises:
        InvalidSpecError: the value is negative, fractional, a bool or not a time.
    """
    # bool is an int subclass; True as "1 second" is never what the caller meant.
    if isinstance(value, bool):
        raise InvalidSpecError(field, value, _TIME_REASON)
    if isinstance(value, int):
        if value < 0:
            raise InvalidSpecError(field, value, "must not be negative")
        return value
    if isinstance(value, float):
        if not value.is_integer() or value < 0:
            raise InvalidSpecError(field, value, "must be a whole, non-negative number of seconds")
        return int(value)
    if not isinstance(value, str):
        raise InvalidSpecError(field, value, _TIME_REASON)
    text = value.strip().upper()
    if text in _UNLIMITED:
        return None
    day_units = [86400, 3600, 60, 1]
    if match := _DAYS_DOT.fullmatch(text) or _DAYS_DASH.fullmatch(text):
        parts = [int(g) for g in match.groups() if g is not None]
        return _combine(field, value, parts, day_units[: len(parts)])
    if match := _CLOCK.fullmatch(text):
        parts = [int(g) for g in match.groups() if g is not None]
        # M, M:S or H:M:S: a lone number is minutes, the last of several is seconds.
        units = [60] if len(parts) == 1 else day_units[-len(parts) :]
        return _combine(field, value, parts, units)
    raise InvalidSpecError(field, value, _TIME_REASON)


def format_duration(seconds: int | None) -> str:
    """Format seconds as Slurm does: ``D-HH:MM:SS``, ``HH:MM:SS`` or ``UNLIMITED``.

    Raises:
        InvalidSpecError: ``seconds`` is negative.
    """
    if seconds is None:
        return "UNLIMITED"
    if seconds < 0:
        raise InvalidSpecError("time_limit", seconds, "must not be negative")
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    clock = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days}-{clock}" if days else clock


def parse_memory(value: str | int, field: str = "memory") -> int:
    """Parse a memory size into whole MiB; no unit means MiB, as in Slurm.

    Units K, M, G, T are binary (optionally followed by ``B`` or ``iB``); partial
    MiB round up so a request never shrinks below what was asked.

    Raises:
        InvalidSpecError: the value is negative, a bool or not a size.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidSpecError(field, value, _MEM_REASON)
    if isinstance(value, int):
        if value < 0:
            raise InvalidSpecError(field, value, "must not be negative")
        return value
    match = _MEMORY.fullmatch(value.strip())
    if match is None:
        raise InvalidSpecError(field, value, _MEM_REASON)
    number, unit = match.group(1), (match.group(2) or "M").upper()
    # Fractions only make sense for large units; "1.5M" or "0.5K" is almost surely a typo.
    if "." in number and unit not in ("G", "T"):
        raise InvalidSpecError(field, value, "fractions are only allowed with G or T")
    # Fraction keeps "1.1G" exact, so rounding up never adds a spurious MiB.
    return math.ceil(Fraction(number) * _MIB_PER_UNIT[unit])


def parse_signal(value: str | int, field: str = "signal") -> int:
    """A signal number from `USR1`, `SIGUSR1` or `10`.

    Raises:
        InvalidSpecError: not a signal of this system.
    """
    text = str(value).strip().upper()
    try:
        if text.isdigit():
            return int(signal.Signals(int(text)))
        return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    except (KeyError, ValueError) as exc:
        raise InvalidSpecError(field, value, "not a signal name or number") from exc


@dataclass(frozen=True)
class WarnSignal:
    """sbatch --signal: `signum`, `seconds` before the time limit, to the batch
    script itself (`B:`) or to the job's steps alone."""

    signum: int
    seconds: int
    batch: bool
    reservation: bool = False  # R: may overlap a reservation (Slurm's matter)

    def __str__(self) -> str:
        flags = ("R" if self.reservation else "") + ("B" if self.batch else "")
        name = signal.Signals(self.signum).name.removeprefix("SIG")
        return f"{flags + ':' if flags else ''}{name}@{self.seconds}"


def parse_warn_signal(value: str) -> WarnSignal:
    """sbatch's ``--signal=[{R|B}:]<sig_num>[@sig_time]`` (sig_time 60 when not given).

    Raises:
        InvalidSpecError: a bad flag, signal or time.
    """
    flags, colon, rest = value.strip().rpartition(":")
    if colon and (not flags or set(flags.upper()) - {"R", "B"}):
        raise InvalidSpecError("signal", value, "flags before ':' are B and R")
    name, at, seconds = rest.partition("@")
    signum = parse_signal(name)
    if at and not (_INT.fullmatch(seconds) and int(seconds) <= 65535):
        raise InvalidSpecError("signal", value, "the time after @ is 0 to 65535 seconds")
    return WarnSignal(signum, int(seconds) if at else 60, "B" in flags.upper(),
                      "R" in flags.upper())


def _to_int(field: str, value: str) -> int:
    if not _INT.fullmatch(value):
        raise InvalidSpecError(field, value, "not an integer")
    return int(value)


def _to_nodes(field: str, value: str) -> int:
    # Slurm's "min-max" node range: the job can start with the minimum.
    low, sep, high = value.partition("-")
    minimum = _to_int(field, low)
    if sep and _to_int(field, high) < minimum:
        raise InvalidSpecError(field, value, "range minimum exceeds maximum")
    return minimum


def _to_gpus(field: str, value: str) -> int:
    # --gpus accepts "[type:]count"; only the count matters here.
    return _to_int(field, value.rpartition(":")[2])


_Converter = Callable[[str, str], Any]


def _keep(field: str, value: str) -> str:
    return value


def _yes_no(field: str, value: str) -> bool:
    if value.lower() not in ("yes", "no"):
        raise InvalidSpecError(field, value, "use yes or no")
    return value.lower() == "yes"


# option names -> (JobSpec field, converter); None marks a flag without a value.
_OPTIONS: dict[str, tuple[str, _Converter | None]] = {}
for _names, _field, _conv in (
    (("-J", "--job-name"), "name", _keep),
    (("-p", "--partition"), "partition", _keep),
    (("-A", "--account"), "account", _keep),
    (("-M", "--clusters"), "cluster", _keep),
    (("-N", "--nodes"), "nodes", _to_nodes),
    (("-n", "--ntasks"), "ntasks", _to_int),
    (("--ntasks-per-node", "--tasks-per-node"), "ntasks_per_node", _to_int),  # see below
    (("-c", "--cpus-per-task"), "cpus_per_task", _to_int),
    (("--mem",), "memory", lambda f, v: parse_memory(v, f)),
    (("--mem-per-cpu",), "memory_per_cpu", lambda f, v: parse_memory(v, f)),
    (("-G", "--gpus"), "gpus", _to_gpus),
    (("--gpus-per-node",), "gpus_per_node", _to_gpus),  # see below
    (("--gpus-per-task",), "gpus_per_task", _to_gpus),
    (("--gres",), "gpus", _keep),  # handled specially: may hold non-GPU resources
    (("-t", "--time"), "time_limit", lambda f, v: parse_duration(v, f)),
    (("-b", "--begin"), "begin", _keep),
    (("--deadline",), "deadline", _keep),
    (("--priority",), "priority", _to_int),
    (("-H", "--hold"), "hold", None),
    (("-a", "--array"), "array", _keep),
    (("-d", "--dependency"), "dependencies", _keep),
    (("--kill-on-invalid-dep",), "kill_on_invalid_dependency", _yes_no),
    (("-o", "--output"), "stdout", _keep),
    (("-e", "--error"), "stderr", _keep),
    (("--open-mode",), "open_mode", _keep),
    (("-D", "--chdir"), "working_directory", _keep),
    (("--export",), "environment", lambda f, v: export_environment(v)),
    (("--comment",), "comment", _keep),
    (("--signal",), "signal", _keep),
    (("-q", "--qos"), "qos", _keep),
    (("--mail-type",), "mail_type", _keep),
    (("--mail-user",), "mail_user", _keep),
    (("--requeue",), "requeue", None),
    # Slurm's alone: a cluster that cannot honour them refuses the job.
    (("--exclusive",), "exclusive", None),
    (("-C", "--constraint"), "constraint", _keep),
    (("--reservation",), "reservation", _keep),
):
    for _name in _names:
        _OPTIONS[_name] = (_field, _conv)
# Flags that set their field to False.
_OFF_FLAGS = {"--no-requeue": "requeue"}


def _strip_comment(text: str) -> str:
    """Cut a trailing `` #...`` comment that is outside quotes."""
    quote = ""
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i]
    return text


def _apply_gres(result: dict[str, Any], unknown: list[str], token: str, value: str) -> None:
    # --gres is a comma list ("gpu:a100:2,mps:100"); take the GPUs, pass the rest on.
    others: list[str] = []
    for item in value.split(","):
        parts = item.split(":")
        if parts[0] != "gpu":
            others.append(item)
        elif len(parts) == 1:
            result["gpus"] = 1  # Slurm's default count for a bare "gpu"
        elif len(parts) <= 3:
            # "gpu:2" vs "gpu:a100": a lone non-numeric part is a type, count 1.
            count = parts[-1] if len(parts) == 3 or parts[1].isdigit() else "1"
            result["gpus"] = _to_int("gpus", count)
        else:
            raise InvalidSpecError("gpus", token, "not a GPU gres; use gpu[:type]:N")
    if others:
        unknown.append("--gres=" + ",".join(others))


def _directive_tokens(script: str) -> list[str]:
    """Collect the option words of the ``#SBATCH`` lines sbatch would read."""
    tokens: list[str] = []
    for line in script.splitlines():
        # sbatch matches the magic word at column 0 only; indented ones are comments.
        if line.startswith("#SBATCH") and (len(line) == 7 or line[7].isspace()):
            options = _strip_comment(line[7:])
            try:
                tokens.extend(shlex.split(options, comments=False, posix=True))
            except ValueError as exc:
                raise InvalidSpecError("script", line, f"bad #SBATCH line: {exc}") from exc
        elif line.strip() and not line.lstrip().startswith("#"):
            break  # the first command ends the directive block, as in sbatch
    return tokens


def parse_sbatch_directives(script: str) -> dict[str, Any]:
    """Read the ``#SBATCH`` directives of a batch script into JobSpec fields.

    Only fields that were set appear; later directives override earlier ones.
    Options this parser does not know are listed, in order, under ``"_unknown"``.

    Raises:
        InvalidSpecError: a known option lacks its value or has a bad one.
    """
    result: dict[str, Any] = {}
    unknown: list[str] = []
    tokens = _directive_tokens(script)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        value: str | None = None
        if token.startswith("--"):
            name, eq, attached = token.partition("=")
            value = attached if eq else None
        elif token.startswith("-") and len(token) > 2:
            name, value = token[:2], token[2:]  # "-c2"
        else:
            name = token
        if name in _OFF_FLAGS and value is None:
            result[_OFF_FLAGS[name]] = False
            continue
        spec = _OPTIONS.get(name)
        if spec is None:
            unknown.append(token)
            continue
        field, convert = spec
        if convert is None:
            if value is not None:
                # "-Hx" is not "-H": leave it to the caller rather than guess.
                unknown.append(token)
            else:
                result[field] = True
            continue
        if value is None:
            # Like getopt, the next word is the value whatever it looks like.
            if i >= len(tokens):
                raise InvalidSpecError(field, "", "missing value")
            value = tokens[i]
            i += 1
        if value == "":
            raise InvalidSpecError(field, "", "missing value")
        if name == "--gres":
            _apply_gres(result, unknown, token, value)
        else:
            result[field] = convert(field, value)
    # Counts per node or task, as the totals they make.
    per_node = result.pop("ntasks_per_node", None)
    if per_node is not None and "ntasks" not in result:
        result["ntasks"] = per_node * result.get("nodes", 1)
    gpus_per_node = result.pop("gpus_per_node", None)
    gpus_per_task = result.pop("gpus_per_task", None)
    if "gpus" not in result and gpus_per_node is not None:
        result["gpus"] = gpus_per_node * result.get("nodes", 1)
    elif "gpus" not in result and gpus_per_task is not None:
        result["gpus"] = gpus_per_task * result.get("ntasks", 1)
    if unknown:
        result["_unknown"] = unknown
    return result
