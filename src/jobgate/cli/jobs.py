"""The job commands: submit, ls, show, cancel, logs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from jobgate.cli.columns import FormatError, format_lines, parse_columns, table_of
from jobgate.cli.common import connect, console, fail, print_json
from jobgate.cli.control import array_tasks, exit_status
from jobgate.cli.render import exit_text, job_details, jobs_table
from jobgate.cli.upload_bar import upload_bar
from jobgate.client import Client, as_completed
from jobgate.client.admin import Admin
from jobgate.client.client import Stream
from jobgate.domain.parsing import parse_sbatch_directives
from jobgate.errors import JobgateError

DEFAULT_LS_LIMIT = 100


def submit(
    ctx: typer.Context,
    script: Annotated[
        str | None, typer.Argument(metavar="[SCRIPT]",
                                   help="Batch script file; - reads it from stdin.")
    ] = None,
    name: Annotated[str | None, typer.Option("-J", "--job-name", help="Job name.")] = None,
    partition: Annotated[str | None, typer.Option("-p", "--partition")] = None,
    account: Annotated[str | None, typer.Option("-A", "--account")] = None,
    cluster: Annotated[str | None, typer.Option("-M", "--cluster")] = None,
    nodes: Annotated[int | None, typer.Option("-N", "--nodes", min=1)] = None,
    ntasks: Annotated[int | None, typer.Option("-n", "--ntasks", min=1)] = None,
    cpus_per_task: Annotated[int | None, typer.Option("-c", "--cpus-per-task", min=1)] = None,
    mem: Annotated[str | None, typer.Option("--mem", help="Memory per node: 4G, 500M, ...")] = None,
    mem_per_cpu: Annotated[str | None, typer.Option("--mem-per-cpu", help="Memory per CPU.")]
    = None,
    gpus: Annotated[int | None, typer.Option("-G", "--gpus", min=0)] = None,
    array: Annotated[str | None, typer.Option("-a", "--array", help="0-9, 1,3,5, 0-99%10")]
    = None,
    dependency: Annotated[str | None, typer.Option("-d", "--dependency",
                                                   help="afterok:12, afterany:12:13, ...")]
    = None,
    hold: Annotated[bool, typer.Option("-H", "--hold", help="Submit held.")] = False,
    begin: Annotated[str | None, typer.Option("-b", "--begin", help="ISO 8601 start time.")]
    = None,
    deadline: Annotated[str | None, typer.Option("--deadline", help="ISO 8601.")] = None,
    export: Annotated[str | None, typer.Option("--export", help="A=1,B=2 added to the "
                                               "job's environment.")] = None,
    wrap: Annotated[str | None, typer.Option("--wrap", help="A command line instead of "
                                             "a script.")] = None,
    time_limit: Annotated[
        str | None, typer.Option("-t", "--time", help="Time limit: 1:00:00, 2-00:00:00, ...")
    ] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeatable.")] = None,
    output: Annotated[str | None, typer.Option("-o", "--output", help="stdout file")] = None,
    open_mode: Annotated[str | None, typer.Option(
        "--open-mode", help="append or truncate (default) the output files")] = None,
    qos: Annotated[str | None, typer.Option("-q", "--qos", help="Slurm's QOS.")] = None,
    mail_type: Annotated[str | None, typer.Option(
        "--mail-type", help="When Slurm mails: END,FAIL, ALL, ...")] = None,
    mail_user: Annotated[str | None, typer.Option("--mail-user", help="Whom Slurm mails.")]
    = None,
    warn_signal: Annotated[str | None, typer.Option(
        "--signal", help="[B:]SIG[@SECONDS]: a signal that long before the time limit")] = None,
    exclusive: Annotated[bool, typer.Option(
        "--exclusive", help="Run alone on its nodes (Slurm clusters).")] = False,
    constraint: Annotated[str | None, typer.Option(
        "-C", "--constraint", help="Node features needed (Slurm clusters).")] = None,
    reservation: Annotated[str | None, typer.Option(
        "--reservation", help="A Slurm reservation to run in.")] = None,
    requeue: Annotated[bool | None, typer.Option(
        "--requeue/--no-requeue", help="May the job be requeued?", show_default=False)] = None,
    error: Annotated[str | None, typer.Option("-e", "--error", help="stderr file")] = None,
    chdir: Annotated[
        str | None, typer.Option("-D", "--chdir", help="Working directory (default: here)")
    ] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option("--file", help="An input file sent with the job; repeatable.",
                     exists=True, dir_okay=False),
    ] = None,
    archive: Annotated[
        Path | None, typer.Option("--zip", help="A zip archive unpacked for the job.",
                                  exists=True, dir_okay=False)
    ] = None,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", show_default=False,
        help="A progress bar on stderr while --file/--zip upload (default: on a terminal)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
    parsable: Annotated[bool, typer.Option(
        "--parsable", help="Print the job id alone (id;cluster with -M), as sbatch does.")]
    = False,
    wait: Annotated[bool, typer.Option("--wait", "-W", help="Wait for the job to end and "
                                       "exit with its exit code (an array: every task, "
                                       "their highest code).")] = False,
) -> None:
    """Submit a batch script (or --wrap a command), as sbatch does.

    The script's #SBATCH lines fill what no option sets; the job runs in the
    current directory unless -D (or #SBATCH -D) says otherwise. With --file or
    --zip, the files are sent along and the job runs in a fresh directory of its
    own, where they are placed (unless -D says otherwise).
    """
    if (script is None) == (wrap is None):
        fail("give a SCRIPT file (or - for stdin), or --wrap 'command'", 2)
    text = _read_script(script) if script is not None else ""
    # A script file goes by its path, so that the job is named after it (as
    # sbatch names it) unless -J or `#SBATCH -J` names it.
    script_path = script if script not in (None, "-") else None
    uploads = bool(files) or archive is not None
    fields: dict[str, Any] = {
        "name": name, "partition": partition, "account": account, "cluster": cluster,
        "nodes": nodes, "ntasks": ntasks, "cpus_per_task": cpus_per_task, "memory": mem,
        "time_limit": time_limit, "tags": tags or None, "stdout": output, "stderr": error,
        "working_directory": (_working_directory(text, chdir)
                              if not uploads or chdir is not None else None),
        "memory_per_cpu": mem_per_cpu, "gpus": gpus, "array": array,
        "dependencies": dependency, "hold": hold or None, "begin": begin,
        "deadline": deadline, "export": export, "command": wrap, "open_mode": open_mode,
        "qos": qos, "mail_type": mail_type, "mail_user": mail_user, "requeue": requeue,
        "signal": warn_signal, "exclusive": exclusive or None, "constraint": constraint,
        "reservation": reservation,
    }
    for variable, field in SBATCH_VARIABLES.items():
        if fields.get(field) is None and os.environ.get(variable):
            fields[field] = os.environ[variable]
    with connect(ctx) as client:
        try:
            with upload_bar(progress if uploads else False) as moved:
                job = client.submit(text if script == "-" else None, script_path=script_path,
                                    files=files or (), archive=archive, progress=moved,
                                    **fields)
        except OSError as exc:
            fail(f"cannot read {exc.filename}: {exc.strerror}")
        submitted = (f"{job.id};{job.cluster}" if cluster else str(job.id)) if parsable \
            else f"Submitted batch job {job.id}"
        if not wait:
            if as_json:
                print_json(job.to_dict())
            else:
                typer.echo(submitted)
            return
        if not as_json:
            typer.echo(submitted, err=not parsable)
        # An array: every task, as sbatch --wait waits for them all.
        tasks = client.list(array=job.array_id) if job.array_id is not None else [job]
        done = sorted(as_completed(tasks, client=client), key=lambda task: task.id)
    if as_json:
        print_json(done[0].to_dict() if job.array_id is None else
                   [task.to_dict() for task in done])
    else:
        for task in done:
            typer.echo(f"job {task.id} {task.state.value} (exit {exit_text(task)})", err=True)
    # sbatch --wait: the job's exit code; an array's, its tasks' highest.
    raise typer.Exit(max(exit_status([task]) for task in done))


# sbatch's input variables (a cluster's profile often sets SBATCH_ACCOUNT): as
# with sbatch, they win over the script's #SBATCH lines and lose to options.
SBATCH_VARIABLES = {
    "SBATCH_JOB_NAME": "name", "SBATCH_ACCOUNT": "account", "SBATCH_PARTITION": "partition",
    "SBATCH_CLUSTERS": "cluster", "SBATCH_TIMELIMIT": "time_limit", "SBATCH_QOS": "qos",
    "SBATCH_MEM_PER_NODE": "memory", "SBATCH_MEM_PER_CPU": "memory_per_cpu",
    "SBATCH_GPUS": "gpus", "SBATCH_RESERVATION": "reservation",
    "SBATCH_CONSTRAINT": "constraint", "SBATCH_OPEN_MODE": "open_mode",
    "SBATCH_SIGNAL": "signal", "SBATCH_EXPORT": "export",
}


def _read_script(script: str) -> str:
    if script == "-":
        return sys.stdin.read()
    try:
        return Path(script).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read script {script}: {getattr(exc, 'strerror', None) or exc}")


def _working_directory(script: str, chdir: str | None) -> str:
    """Where the job runs, made absolute here, where relative paths mean something:
    -D, else the script's own `#SBATCH -D`, else the current directory."""
    if chdir is None:
        try:
            chdir = parse_sbatch_directives(script).get("working_directory")
        except JobgateError:
            chdir = None  # the gateway will name the bad directive
    return os.path.abspath(os.path.expanduser(chdir or os.curdir))


def ls(
    ctx: typer.Context,
    states: Annotated[
        list[str] | None, typer.Option("--state", "-t", help="Only this state; repeatable.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only jobs with this tag.")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's jobs.")]
    = None,
    me: Annotated[bool, typer.Option("--me", help="Only my own jobs (as squeue --me).")]
    = False,
    account: Annotated[str | None, typer.Option("--account", "-A",
                                                help="Only jobs charged to this account.")]
    = None,
    partition: Annotated[str | None, typer.Option("--partition", "-p")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", "-M")] = None,
    array: Annotated[int | None, typer.Option(
        "--array", min=1, help="Only the tasks of this array (its job id).")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", "-o", help="squeue's format string (\"%.7i %.9P %.8j %.8u %.2t %.10M\") "
        "or a list of columns (id,name,state,account).")] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help=f"At most this many (default: {DEFAULT_LS_LIMIT})"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List jobs, newest first: every job you may see (as squeue), or --me for yours."""
    if me and user is not None:
        fail("give --me or --user, not both", 2)
    try:
        # Check the format before asking the server anything.
        names = parse_columns(fmt) if fmt is not None and "%" not in fmt else None
        if fmt is not None and names is None:
            format_lines(fmt, [])
    except FormatError as exc:
        fail(str(exc), 2)
    wanted = limit or DEFAULT_LS_LIMIT
    with connect(ctx) as client:
        if me:
            user = Admin(client).me()["name"]
        jobs = client.list(
            state=[s.upper() for s in states or ()], tag=tag, user=user, account=account,
            cluster=cluster, partition=partition, array=array, limit=wanted + 1,
        )
    more, jobs = len(jobs) > wanted, jobs[:wanted]
    if as_json:
        print_json([job.to_dict() for job in jobs])
    elif names is not None:
        console().print(table_of(names, jobs))
    elif fmt is not None:
        for line in format_lines(fmt, jobs):
            typer.echo(line)
    else:
        console().print(jobs_table(jobs))
    if more and limit is None:
        typer.echo(f"(the newest {wanted} shown; use --limit for more)", err=True)


def show(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
) -> None:
    """Show every field of one job."""
    with connect(ctx) as client:
        job = client.get(job_id)
    if as_json:
        print_json(job.to_dict())
    else:
        console().print(job_details(job))


def cancel(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ID...]")] = None,
    states: Annotated[list[str] | None, typer.Option(
        "--state", "-t", help="Cancel every job in this state; repeatable.")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="...of this user.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="...with this tag.")] = None,
    array: Annotated[int | None, typer.Option(
        "--array", min=1, help="...of this array: its tasks (the array's job id).")] = None,
) -> None:
    """Cancel jobs by id, or every active job matching --state/--user/--tag/--array
    (as scancel; `scancel ARRAY_ID` is `jobgate cancel --array ARRAY_ID`)."""
    if not ids and not (states or user or tag or array):
        fail("give job ids, or --state/--user/--tag/--array to choose jobs", 2)
    failed = 0
    with connect(ctx) as client:
        if ids:
            targets = list(ids)
        elif array is not None and not (states or user or tag):
            targets = array_tasks(client, array)
        else:
            wanted = [s.upper() for s in states or ()] or \
                ["PENDING", "RUNNING", "SUSPENDED"]
            targets = [job.id for job in client.iter_jobs(state=wanted, user=user, tag=tag,
                                                          array=array)
                       if not job.state.final]
        for job_id in targets:
            try:
                job = client.cancel(job_id)
            except JobgateError as exc:
                failed += 1
                typer.echo(f"error: job {job_id}: {exc.message}", err=True)
                continue
            if job.state.final:
                typer.echo(f"Cancelled job {job.id}")
            else:
                typer.echo(f"Cancelling job {job.id} ({job.state.value})")
    if failed:
        raise typer.Exit(3 if failed < len(targets) else 1)


def logs(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="ID")],
    stderr: Annotated[bool, typer.Option("--stderr", help="Standard error, not output.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job has ended.")
    ] = False,
) -> None:
    """Print a job's output (or its standard error)."""
    stream: Stream = "stderr" if stderr else "stdout"
    with connect(ctx) as client:
        if not follow:
            _drain(client, job_id, stream, 0)
            return
        try:
            _follow(client, job_id, stream)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None  # Ctrl-C is how one stops following


def _drain(client: Client, job_id: int, stream: Stream, offset: int) -> int:
    """Copy the stream from `offset` to its current end onto stdout; the new offset."""
    out = sys.stdout.buffer
    while True:
        data, offset = client.read_output(job_id, stream, offset=offset)
        if not data:
            return offset
        out.write(data)
        out.flush()


def _follow(client: Client, job_id: int, stream: Stream) -> None:
    out = sys.stdout.buffer
    for chunk in client.follow_output(job_id, stream):
        out.write(chunk)
        out.flush()
