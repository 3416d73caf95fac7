"""The `jobgate` command: global options and the subcommands."""

from __future__ import annotations

from typing import Annotated

import typer

from jobgate.cli import control, jobs, monitor, serve
from jobgate.cli.admin import admin_app, token_app
from jobgate.cli.common import Options

app = typer.Typer(
    name="jobgate",
    help="A job gateway for compute clusters: submit, watch and steer batch jobs.",
    no_args_is_help=True,
    add_completion=True,
    # Plain tracebacks for bugs; rich ones would print local variables (the token).
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from jobgate import __version__

        typer.echo(f"jobgate {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="JOBGATE_URL", help="Gateway URL (default: http://127.0.0.1:8000)"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="JOBGATE_TOKEN", show_default=False,
                     help="Bearer token (default: $JOBGATE_HOME/admin.token)"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    ctx.obj = Options(url=url, token=token)


app.command()(serve.serve)
app.command()(jobs.submit)
app.command("ls")(jobs.ls)
app.command()(jobs.show)
app.command()(jobs.cancel)
app.command()(jobs.logs)
app.command()(control.hold)
app.command()(control.release)
app.command()(control.suspend)
app.command()(control.resume)
app.command()(control.requeue)
app.command()(control.signal)
app.command()(control.notify)
app.command()(control.modify)
app.command()(control.rm)
app.command()(control.wait)
app.command()(monitor.watch)
app.command()(monitor.stats)
app.command()(monitor.events)
app.command()(monitor.clusters)
app.add_typer(admin_app, name="admin")
app.add_typer(token_app, name="token")


def main() -> None:
    """Entry point of the `jobgate` console script and of `python -m jobgate`."""
    app()
