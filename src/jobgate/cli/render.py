"""How jobs look on a terminal: the `ls` table and the `show` view."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from jobgate.client import Job
from jobgate.domain.states import JobState

STATE_STYLES: dict[JobState, str] = {
    JobState.PENDING: "yellow",
    JobState.RUNNING: "cyan",
    JobState.SUSPENDED: "magenta",
    JobState.COMPLETING: "cyan",
    JobState.COMPLETED: "green",
    JobState.UNKNOWN: "bold red",
}


def state_text(state: JobState) -> Text:
    style = STATE_STYLES.get(state, "red")  # every other final state is a failure
    return Text(state.value, style=style)


def clock(seconds: int | None) -> str:
    """Seconds as H:MM:SS (hours unbounded), as squeue's TIME column."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(max(seconds, 0), 60)
    hours, mins = divmod(minutes, 60)
    return f"{hours}:{mins:02d}:{secs:02d}"


def local_time(moment: datetime | None) -> str:
    """A timestamp in the viewer's time zone, to the second."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def exit_text(job: Job) -> str:
    """Slurm's ExitCode: `code`, or `code:signal` when a signal ended the job."""
    if job.exit_code_signal is not None:
        return f"{job.exit_code or 0}:{job.exit_code_signal}"
    return "-" if job.exit_code is None else str(job.exit_code)


def reason_or_node(job: Job) -> str:
    """squeue's %R: the reason while pending, else the node list (here: the node)."""
    if job.state is JobState.PENDING:
        return f"({job.state_reason or 'None'})"
    allocation = job.allocation
    if isinstance(allocation, dict) and allocation.get("node"):
        return str(allocation["node"])
    return job.state_reason or "-"


def jobs_table(jobs: Iterable[Job]) -> Table:
    """squeue's default view, with the exit code and the submit time: a pending
    job says why it waits, the others where they ran (NODELIST(REASON))."""
    table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    for column in ("ID", "NAME", "USER", "STATE", "PARTITION", "TIME", "EXIT"):
        table.add_column(column, justify="right" if column in ("ID", "TIME") else "left",
                         no_wrap=True, overflow="fold")
    table.add_column("SUBMITTED", no_wrap=True)
    table.add_column("NODELIST(REASON)", overflow="fold")
    for job in jobs:
        # Text, not str: a job name like "[red]x" must not be read as rich markup.
        table.add_row(
            Text(str(job.id)), Text(job.name), Text(job.user_name), state_text(job.state),
            Text(job.partition), Text(clock(job.run_time)), Text(exit_text(job)),
            Text(local_time(job.submit_time)), Text(reason_or_node(job)),
        )
    return table


def job_details(job: Job) -> Text:
    """Every field the API sent, one `key  value` line each; times in local time."""
    data = job.to_dict()
    width = max(map(len, data), default=0)
    lines = []
    for key, value in data.items():
        shown = _value_text(job, key, value)
        lines.append(Text.assemble((key.ljust(width), "bold"), "  ",
                                   shown if isinstance(shown, Text) else Text(shown)))
    return Text("\n").join(lines)


def _value_text(job: Job, key: str, value: Any) -> Text | str:
    if key == "state":
        return state_text(job.state)
    if value is None:
        return Text("-", style="dim")
    if key.endswith("_time") and isinstance(getattr(job, key, None), datetime):
        return local_time(getattr(job, key))
    if key in ("run_time", "time_limit") and isinstance(value, int):
        return f"{clock(value)} ({value} s)"
    if key in ("memory", "memory_per_cpu") and isinstance(value, int):
        return f"{value} MiB"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or Text("-", style="dim")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "allocation" and isinstance(value, dict):
        return allocation_text(value)
    if isinstance(value, dict):  # a registry job's record fields: as JSON, not Python
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def stats_lines(data: dict[str, Any]) -> list[str]:
    """One job's usage (GET /v1/jobs/{id}/stats), `key  value` a line, in units
    a person reads: clocks, CPU seconds, MiB."""
    width = max(map(len, data), default=0)
    return [f"{key.ljust(width)}  {_stat_text(key, value)}" for key, value in data.items()]


def _stat_text(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("run_time", "elapsed_cpu_time", "suspended_seconds"):
        seconds = round(value)
        return f"{clock(seconds)} ({seconds} s)"
    if key in ("cpu_time", "cpu_user", "cpu_system"):
        return f"{value:.3f} s"
    if key == "max_rss":
        return f"{value / 1024:.1f} MiB ({value} KiB)"
    if key == "allocation" and isinstance(value, dict):
        return allocation_text(value)
    return str(value)


def allocation_text(allocation: dict[str, Any]) -> str:
    """A job's resource layout: "node vm, cpus 0,1, memory 512 MiB, gpus -"."""
    cpus = ",".join(map(str, allocation.get("cpus") or [])) or "-"
    gpus = ",".join(map(str, allocation.get("gpus") or [])) or "-"
    memory = f"{allocation['memory']} MiB" if allocation.get("memory") else "-"  # 0: none asked
    return f"node {allocation.get('node', '-')}, cpus {cpus}, memory {memory}, gpus {gpus}"
