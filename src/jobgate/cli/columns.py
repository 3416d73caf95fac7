"""`jobgate ls --format`: squeue's `-o` format strings, or a list of columns.

Two forms, as squeue has two options:

- a format string with `%` fields, as ``squeue -o`` takes it
  (``"%.7i %.9P %.8j %.8u %.2t %.10M %.6D %R"``): `%X` prints the field as is,
  `%10X` pads it to 10 characters (left-aligned), `%.10X` right-aligned; the
  text between fields is printed as written, and the header line is the same
  format with the column names;
- a comma-separated list of column names (``id,name,state,account``; the job
  attribute names, or squeue's `--Format` names such as JobID, UserName,
  TimeUsed), shown as the usual table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from jobgate.cli.render import clock, exit_text, local_time, reason_or_node, state_text
from jobgate.client import Job
from jobgate.domain.states import JobState

__all__ = ["COLUMNS", "Column", "format_lines", "parse_columns", "table_of"]


def _dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


# squeue's compact state codes (%t).
_COMPACT = {
    JobState.PENDING: "PD", JobState.RUNNING: "R", JobState.SUSPENDED: "S",
    JobState.COMPLETING: "CG", JobState.COMPLETED: "CD", JobState.CANCELLED: "CA",
    JobState.FAILED: "F", JobState.TIMEOUT: "TO", JobState.NODE_FAIL: "NF",
    JobState.PREEMPTED: "PR", JobState.BOOT_FAIL: "BF", JobState.DEADLINE: "DL",
    JobState.OUT_OF_MEMORY: "OOM",
}


@dataclass(frozen=True)
class Column:
    """One column: its header and how a job's cell reads."""

    header: str
    cell: Callable[[Job], str]
    right: bool = False


COLUMNS: dict[str, Column] = {
    "id": Column("JOBID", lambda j: str(j.id), right=True),
    "name": Column("NAME", lambda j: j.name),
    "user_name": Column("USER", lambda j: j.user_name),
    "account": Column("ACCOUNT", lambda j: _dash(j.account)),
    "project": Column("PROJECT", lambda j: _dash(j.project)),
    "cluster": Column("CLUSTER", lambda j: j.cluster),
    "partition": Column("PARTITION", lambda j: j.partition),
    "state": Column("STATE", lambda j: j.state.value),
    "state_compact": Column("ST", lambda j: _COMPACT.get(j.state, j.state.value)),
    "state_reason": Column("REASON", lambda j: _dash(j.state_reason)),
    "reason_or_nodes": Column("NODELIST(REASON)", reason_or_node),
    "run_time": Column("TIME", lambda j: clock(j.run_time), right=True),
    "time_limit": Column("TIME_LIMIT", lambda j: clock(j.time_limit)
                         if j.time_limit is not None else "UNLIMITED", right=True),
    "num_nodes": Column("NODES", lambda j: str(j.num_nodes), right=True),
    "ntasks": Column("TASKS", lambda j: str(j.ntasks), right=True),
    "cpus": Column("CPUS", lambda j: str(j.cpus), right=True),
    "cpus_per_task": Column("CPUS_PER_TASK", lambda j: str(j.cpus_per_task), right=True),
    "memory": Column("MIN_MEMORY", lambda j: _dash(j.memory and f"{j.memory}M"), right=True),
    "gpus": Column("GPUS", lambda j: str(j.gpus), right=True),
    "priority": Column("PRIORITY", lambda j: str(j.priority), right=True),
    "exit_code": Column("EXIT", exit_text),
    "submit_time": Column("SUBMIT_TIME", lambda j: local_time(j.submit_time)),
    "start_time": Column("START_TIME", lambda j: local_time(j.start_time)),
    "end_time": Column("END_TIME", lambda j: local_time(j.end_time)),
    "working_directory": Column("WORK_DIR", lambda j: j.working_directory),
    "standard_output": Column("STDOUT", lambda j: j.standard_output),
    "standard_error": Column("STDERR", lambda j: j.standard_error),
    "dependencies": Column("DEPENDENCY", lambda j: _dash(j.dependencies)),
    "qos": Column("QOS", lambda j: _dash(j.qos)),
    "comment": Column("COMMENT", lambda j: _dash(j.comment)),
    "tags": Column("TAGS", lambda j: ",".join(j.tags) or "-"),
    "array_id": Column("ARRAY_JOB_ID", lambda j: _dash(j.array_id), right=True),
    "array_task_id": Column("ARRAY_TASK_ID", lambda j: _dash(j.array_task_id), right=True),
    "requeue_count": Column("RESTARTS", lambda j: str(j.requeue_count), right=True),
}

# squeue -o letters.
LETTERS: dict[str, str] = {
    "i": "id", "A": "id", "j": "name", "u": "user_name", "a": "account", "P": "partition",
    "T": "state", "t": "state_compact", "r": "state_reason", "R": "reason_or_nodes",
    "M": "run_time", "l": "time_limit", "D": "num_nodes", "C": "cpus", "c": "cpus_per_task",
    "m": "memory", "Q": "priority", "p": "priority", "V": "submit_time",
    "S": "start_time", "e": "end_time", "Z": "working_directory", "o": "standard_output",
    "E": "dependencies", "k": "comment", "F": "array_id", "K": "array_task_id",
    "b": "gpus", "q": "qos",
}

# squeue --Format names (lower case) that differ from the attribute names.
ALIASES: dict[str, str] = {
    "jobid": "id", "jobarrayid": "id", "username": "user_name", "user": "user_name",
    "timeused": "run_time", "time": "run_time", "timelimit": "time_limit",
    "numnodes": "num_nodes", "nodes": "num_nodes", "numcpus": "cpus",
    "numtasks": "ntasks", "minmemory": "memory", "reason": "state_reason",
    "reasonlist": "reason_or_nodes", "nodelist": "reason_or_nodes",
    "statecompact": "state_compact", "st": "state_compact", "submittime": "submit_time",
    "starttime": "start_time", "endtime": "end_time", "workdir": "working_directory",
    "stdout": "standard_output", "stderr": "standard_error", "dependency": "dependencies",
    "arrayjobid": "array_id", "arraytaskid": "array_task_id", "exit": "exit_code",
    "restartcnt": "requeue_count", "tres-per-job": "gpus",
}

_FIELD = re.compile(r"%(\.?)(\d*)([A-Za-z%])")


class FormatError(ValueError):
    """A --format the user must fix; the message says how."""


def _known() -> str:
    return ", ".join(COLUMNS)


def parse_columns(text: str) -> list[str]:
    """Column names of a comma-separated list (attribute or squeue --Format names).

    Raises:
        FormatError: an unknown name (the message lists the known ones).
    """
    names = []
    for raw in text.split(","):
        key = raw.strip().split(":", 1)[0]  # squeue's Name:width; the table sizes itself
        if not key:
            continue
        name = key if key in COLUMNS else ALIASES.get(key.lower().replace("_", ""),
                                                       key.lower())
        if name not in COLUMNS:
            raise FormatError(f"unknown column {key!r} in --format; known: {_known()}")
        names.append(name)
    if not names:
        raise FormatError(f"--format names no column; e.g. id,name,state; known: {_known()}")
    return names


def format_lines(fmt: str, jobs: Iterable[Job]) -> list[str]:
    """squeue `-o` output: the header line, then one line a job.

    Raises:
        FormatError: an unknown `%` letter.
    """
    pieces: list[str | tuple[Column, int, bool]] = []
    position = 0
    for match in _FIELD.finditer(fmt):
        pieces.append(fmt[position:match.start()])
        position = match.end()
        dot, width, letter = match.groups()
        if letter == "%":
            pieces.append("%")
            continue
        if letter not in LETTERS:
            raise FormatError(f"unknown field %{letter} in --format; known: "
                              + " ".join(f"%{k}" for k in LETTERS if len(k) == 1))
        pieces.append((COLUMNS[LETTERS[letter]], int(width or 0), bool(dot)))
    pieces.append(fmt[position:])

    def line(cell: Callable[[Column], str]) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            column, width, right = piece
            value = cell(column)
            if width:
                value = value[:width]  # squeue truncates to the width
                value = value.rjust(width) if right else value.ljust(width)
            out.append(value)
        return "".join(out).rstrip()

    def cells_of(job: Job) -> Callable[[Column], str]:
        return lambda column: column.cell(job)

    return [line(lambda column: column.header), *(line(cells_of(job)) for job in jobs)]


def table_of(names: list[str], jobs: Iterable[Job]) -> Table:
    """A rich table of these columns (state cells in their colours)."""
    table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    for name in names:
        column = COLUMNS[name]
        table.add_column(column.header, justify="right" if column.right else "left",
                         no_wrap=True, overflow="fold")
    for job in jobs:
        # Text, not str: a job name like "[red]x" must not be read as rich markup.
        table.add_row(*(state_text(job.state) if name == "state" else
                        Text(COLUMNS[name].cell(job)) for name in names))
    return table
