"""Commands that steer jobs: hold, release, suspend, resume, requeue, signal,
notify, modify, rm and wait."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jobgate.cli.common import connect, fail, print_json
from jobgate.cli.render import exit_text
from jobgate.client import Client, Job, as_completed
from jobgate.errors import JobgateError

Ids = Annotated[list[int], typer.Argument(metavar="ID...", help="Job ids.")]
# Steering verbs take ids and/or --array (as scontrol does an array's job id).
SomeIds = Annotated[list[int] | None, typer.Argument(metavar="[ID...]", help="Job ids.")]
Array = Annotated[int | None, typer.Option(
    "--array", min=1, help="And every task of this array not yet ended (its job id).")]
EveryTask = Annotated[int | None, typer.Option(
    "--array", min=1, help="And every task of this array (its job id).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the jobs as JSON.")]

# Exit codes (the README's table): 0 ok, 1 an error, 2 usage, 3 some jobs failed a verb,
# 4 wait timed out; `submit --wait` and `wait` on one job exit with its exit code.
EXIT_PARTIAL = 3
EXIT_TIMEOUT = 4


def _each(ctx: typer.Context, ids: list[int] | None, as_json: bool, verb: str,
          act: Any, array: int | None = None, ended_too: bool = False) -> None:
    """Apply `act(client, id)` to each id, and to each task of `array` not yet
    ended (`ended_too`: every task); report each, exit 3 if any failed."""
    if not ids and array is None:
        fail("give job ids, or --array ARRAY_ID", 2)
    results: list[dict[str, Any]] = []
    failed = 0
    with connect(ctx) as client:
        targets = list(ids or ())
        if array is not None:
            targets += array_tasks(client, array, ended_too=ended_too)
        for job_id in targets:
            try:
                job = act(client, job_id)
            except JobgateError as exc:
                failed += 1
                typer.echo(f"error: job {job_id}: {exc.message}", err=True)
                continue
            if as_json:
                results.append(job.to_dict())
            else:
                typer.echo(f"{verb} job {job.id} ({job.state.value})")
    if as_json:
        print_json(results)
    if failed:
        raise typer.Exit(EXIT_PARTIAL if failed < len(targets) else 1)


def array_tasks(client: Client, array: int, *, ended_too: bool = False) -> list[int]:
    """The ids of an array's tasks not yet ended (`ended_too`: all of them).
    An array with no task at all is an error, as scancel says of an unknown id."""
    tasks = list(client.iter_jobs(array=array))
    if not tasks:
        fail(f"no array {array} (give the job id of its first task)")
    return [job.id for job in tasks if ended_too or not job.state.final]


def hold(ctx: typer.Context, ids: SomeIds = None, admin: Annotated[
        bool, typer.Option("--admin", help="An admin hold (JobHeldAdmin).")] = False,
         array: Array = None, as_json: AsJson = False) -> None:
    """Keep pending jobs from starting, as scontrol hold."""
    _each(ctx, ids, as_json, "Held",
          lambda c, i: c.hold(i, "admin" if admin else "user"), array)


def release(ctx: typer.Context, ids: SomeIds = None, array: Array = None,
            as_json: AsJson = False) -> None:
    """Let held jobs start, as scontrol release."""
    _each(ctx, ids, as_json, "Released", lambda c, i: c.release(i), array)


def suspend(ctx: typer.Context, ids: SomeIds = None, array: Array = None,
            as_json: AsJson = False) -> None:
    """Stop running jobs (SIGSTOP); their time limit pauses."""
    _each(ctx, ids, as_json, "Suspended", lambda c, i: c.suspend(i), array)


def resume(ctx: typer.Context, ids: SomeIds = None, array: Array = None,
           as_json: AsJson = False) -> None:
    """Continue suspended jobs."""
    _each(ctx, ids, as_json, "Resumed", lambda c, i: c.resume(i), array)


def requeue(ctx: typer.Context, ids: SomeIds = None, hold_: Annotated[
        bool, typer.Option("--hold", help="Requeue held.")] = False,
            array: EveryTask = None, as_json: AsJson = False) -> None:
    """Put jobs back to PENDING for a fresh run (a running one is stopped first)."""
    _each(ctx, ids, as_json, "Requeued", lambda c, i: c.requeue(i, hold=hold_), array,
          ended_too=True)


def signal(ctx: typer.Context, signal_: Annotated[
        str, typer.Option("--signal", "-s", help="A name (USR1, SIGUSR1) or a number.")],
           ids: SomeIds = None, array: Array = None, as_json: AsJson = False) -> None:
    """Send a signal to every process of running jobs, as scancel -s."""
    _each(ctx, ids, as_json, "Signalled", lambda c, i: c.signal(i, signal_), array)


def notify(ctx: typer.Context, job_id: Annotated[int, typer.Argument(metavar="ID")],
           message: Annotated[str, typer.Argument(help="Text appended to the output.")],
           as_json: AsJson = False) -> None:
    """Append a message to a job's standard output, as scontrol notify."""
    _each(ctx, [job_id], as_json, "Notified", lambda c, i: c.notify(i, message))


def modify(
    ctx: typer.Context, job_id: Annotated[int, typer.Argument(metavar="ID")],
    changes: Annotated[list[str], typer.Argument(
        metavar="FIELD=VALUE...",
        help="Fields to change: time=2:00:00, name=x, mem=4G, partition=p, comment=...")],
    as_json: AsJson = False,
) -> None:
    """Change a pending job (any field) or a running one (time, name, comment)."""
    fields: dict[str, Any] = {}
    for change in changes:
        key, eq, value = change.partition("=")
        if not eq or not key:
            fail(f"'{change}' is not FIELD=VALUE (e.g. time=2:00:00)", 2)
        fields[key.strip().replace("-", "_")] = value
    _each(ctx, [job_id], as_json, "Modified", lambda c, i: c.modify(i, fields))


def rm(ctx: typer.Context, ids: Ids, force: Annotated[
        bool, typer.Option("--force", "-f", help="Cancel active jobs first.")] = False) -> None:
    """Delete ended jobs and their files (they answer 404 from then on)."""
    failed = 0
    with connect(ctx) as client:
        for job_id in ids:
            try:
                client.delete(job_id, force=force)
            except JobgateError as exc:
                failed += 1
                typer.echo(f"error: job {job_id}: {exc.message}", err=True)
                continue
            typer.echo(f"Deleted job {job_id}")
    if failed:
        raise typer.Exit(EXIT_PARTIAL if failed < len(ids) else 1)


def wait(
    ctx: typer.Context, ids: Ids,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Give up after this many seconds (exit 4).")] = None,
    as_json: AsJson = False,
) -> None:
    """Wait until the jobs have ended. With one job, exit with its exit code;
    with several, 0 if all completed, else 1. A progress bar shows many."""
    with connect(ctx) as client:
        jobs = [client.get(i) for i in ids]
        try:
            done = _wait_all(client, jobs, timeout, show=not as_json and len(jobs) > 1)
        except TimeoutError:
            typer.echo(f"error: not all jobs ended within {timeout:g} s", err=True)
            raise typer.Exit(EXIT_TIMEOUT) from None
    if as_json:
        print_json([job.to_dict() for job in done])
    else:
        for job in sorted(done, key=lambda j: j.id):
            typer.echo(f"job {job.id} {job.state.value} (exit {exit_text(job)})")
    raise typer.Exit(exit_status(done))


def _wait_all(client: Client, jobs: list[Job], timeout: float | None,
              show: bool) -> list[Job]:
    done: list[Job] = []
    if not show:
        return list(as_completed(jobs, timeout=timeout, client=client))
    columns = (TextColumn("waiting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("jobs", total=len(jobs))
        for job in as_completed(jobs, timeout=timeout, client=client):
            done.append(job)
            progress.advance(task)
    return done


def exit_status(jobs: list[Job]) -> int:
    """One job: its exit code (1 if it ended without one, say cancelled);
    several: 0 when all completed, else 1."""
    if len(jobs) == 1:
        job = jobs[0]
        if job.state.value == "COMPLETED":
            return 0
        return job.exit_code if job.exit_code not in (None, 0) else 1
    return 0 if all(job.state.value == "COMPLETED" for job in jobs) else 1
