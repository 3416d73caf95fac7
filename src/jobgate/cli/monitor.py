"""Commands that look: watch (a live table), stats, events and clusters."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from jobgate.cli.common import connect, console, print_json
from jobgate.cli.render import clock, jobs_table, stats_lines
from jobgate.client import Client
from jobgate.errors import JobgateError

EVENT_PAGE = 1000


def watch(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option("--tag", help="Only jobs with this tag.")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u")] = None,
    states: Annotated[list[str] | None, typer.Option("--state", "-t")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 30,
    count: Annotated[int | None, typer.Option(
        "--count", min=1, help="Stop after this many redraws (default: until Ctrl-C).")] = None,
    refresh: Annotated[float, typer.Option(
        "--refresh", min=1, max=60, help="Redraw at least this often (seconds), for the "
        "TIME column, when no job changes.")] = 10.0,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between "
                                            "redraws if the gateway's event log cannot "
                                            "be followed.")] = 2.0,
) -> None:
    """A live table of jobs, redrawn as soon as a job changes (Ctrl-C to stop).

    Listens on the gateway's event log (long-poll), so a state change shows at
    once and an idle table costs one request per --refresh; polls every
    --interval if the event log cannot be read.
    """
    with connect(ctx) as client:
        seen = 0
        after: int | None = None
        try:
            after = event_head(client, user)
        except JobgateError:
            after = None  # no event log here: poll
        try:
            with Live(console=console(), auto_refresh=False) as live:
                while count is None or seen < count:
                    jobs = client.list(tag=tag, user=user, limit=limit,
                                       state=[s.upper() for s in states or ()])
                    live.update(jobs_table(jobs), refresh=True)
                    seen += 1
                    if count is not None and seen >= count:
                        break
                    after = _wait_for_change(client, after, user, refresh, interval)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def _wait_for_change(client: Client, after: int | None, user: str | None,
                     refresh: float, interval: float) -> int | None:
    """Block until some job the caller may see changes (or `refresh` runs out);
    the new position in the event log. Without one, sleep `interval`."""
    if after is not None:
        try:
            batch = client.events(after=after, wait=refresh, user=user, limit=EVENT_PAGE)
            return max([after, *(int(event["seq"]) for event in batch)])
        except JobgateError:
            pass  # the gateway went away or refuses: fall back to polling
    time.sleep(interval)
    return None


def event_head(client: Client, user: str | None = None) -> int:
    """The seq of the newest event the caller may see (0: none).

    The API has no "last seq" call; `after=x, limit=1` answers whether any event
    lies above x, so doubling then bisecting finds the head in ~2 log2(head)
    small requests (about 40 for a million events), once per `watch`.

    Raises:
        JobgateError: the event log cannot be read.
    """
    def above(seq: int) -> bool:
        return bool(client.events(after=seq, user=user, limit=1))

    if not above(0):
        return 0
    low, high = 0, 1  # above(low) is True
    while above(high):
        low, high = high, high * 2
    while high - low > 1:  # above(low) True, above(high) False
        middle = (low + high) // 2
        if above(middle):
            low = middle
        else:
            high = middle
    return high


def stats(
    ctx: typer.Context,
    job_id: Annotated[int | None, typer.Argument(
        metavar="[ID]", help="One job's resource usage; without it, accounting.")] = None,
    group_by: Annotated[str, typer.Option(
        "--by", help="project, user, cluster, partition, state or day")] = "user",
    since: Annotated[str | None, typer.Option(help="ISO 8601, e.g. 2024-03-01")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Usage: one job's (run time, CPU time, peak memory) or sums per group."""
    with connect(ctx) as client:
        if job_id is not None:
            data = client.job_stats(job_id)
            if as_json:
                print_json(data)
                return
            typer.echo("\n".join(stats_lines(data)))
            return
        report = client.usage(group_by, since=since, until=until)
    if as_json:
        print_json(report)
        return
    table = Table(box=None, header_style="bold")
    for column in (group_by.upper(), "JOBS", "CPUS", "CPU-TIME", "WALL", "QUEUED"):
        table.add_column(column, justify="left" if column == group_by.upper() else "right")
    for group in [*report["groups"], {**report["total"], "key": "TOTAL"}]:
        table.add_row(Text(str(group["key"] or "-")), str(group["count"]), str(group["cpus"]),
                      clock(group["elapsed_cpu_time"]), clock(group["wall_time"]),
                      clock(group["queue_time"]))
    console().print(table)


def events(
    ctx: typer.Context,
    job_id: Annotated[int | None, typer.Option("--job", "-j", help="Only this job.")] = None,
    after: Annotated[int, typer.Option("--after", help="Only events after this seq.")] = 0,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Job state changes from the event log, oldest first."""
    import json

    with connect(ctx) as client:
        try:
            while True:
                batch = client.events(job_id, after=after, wait=30 if follow else 0,
                                      limit=1000) if follow or job_id is None else \
                    client.events(job_id, after=after)
                for event in batch:
                    after = max(after, int(event["seq"]))
                    if as_json:
                        typer.echo(json.dumps(event))
                    else:
                        typer.echo(f"{event['seq']:>6} {event['at']} job {event['job_id']} "
                                   f"{event['from_state'] or '-'} -> {event['to_state']}"
                                   + (f" ({event['reason']})" if event.get("reason") else ""))
                if not follow:
                    return
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def clusters(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
             ) -> None:
    """The clusters behind this gateway, their partitions and the verbs they take."""
    with connect(ctx) as client:
        found = client.clusters()
    if as_json:
        print_json(found)
        return
    table = Table(box=None, header_style="bold")
    for column in ("CLUSTER", "BACKEND", "DEFAULT", "PARTITIONS", "VERBS"):
        table.add_column(column)
    for cluster in found:
        table.add_row(Text(cluster["name"]), cluster["backend"],
                      "yes" if cluster["default"] else "",
                      Text(", ".join(str(p.get("name")) for p in cluster["partitions"])),
                      ", ".join(cluster["verbs"]))
    console().print(table)
