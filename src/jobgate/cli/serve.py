"""`jobgate serve`: run the gateway (API and engine) in this process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from jobgate.cli.common import fail


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535)] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="State directory (default: $JOBGATE_HOME or ./var)"),
    ] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64,
        help="API processes; one of them runs the engine (the store's lease decides).",
    )] = 1,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log",
        help="Log every request (uvicorn's access log). Off by default: it cost ~9% of "
             "a submit's CPU, and every state-changing call is in the audit log anyway.",
    )] = False,
) -> None:
    """Run the gateway; on first start it writes the admin token to HOME/admin.token."""
    # The server side is imported here only: the other commands are clients and
    # must not pay for (or depend on) FastAPI and SQLAlchemy.
    import uvicorn
    from pydantic import ValidationError

    from jobgate.api.app import create_app
    from jobgate.config import Settings
    from jobgate.errors import JobgateError

    overrides: dict[str, Any] = {
        key: value for key, value in {"host": host, "port": port, "home": home}.items()
        if value is not None
    }
    try:
        settings = Settings.load(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        fail(f"invalid settings: {problems}")
    except (OSError, ValueError) as exc:  # an unreadable or malformed jobgate.toml
        fail(f"cannot load settings: {exc}")
    except JobgateError as exc:  # a bad value that jobgate's own parsers refused
        fail(f"invalid settings: {exc.message}")
    typer.echo(f"jobgate: home {settings.resolved_home}, admin token in "
               f"{settings.admin_token_path}", err=True)
    if workers == 1:
        uvicorn.run(create_app(settings, freeze_heap=True), host=settings.host,
                    port=settings.port, log_level="info", access_log=access_log)
        return
    # Each worker process builds its own app from the environment: hand the
    # command line's choices over through it.
    os.environ["JOBGATE_HOME"] = str(settings.resolved_home)
    _serve_workers(workers, settings.host, settings.port, access_log)


def _serve_workers(workers: int, host: str, port: int, access_log: bool) -> None:
    """uvicorn.run with `workers`, but each worker listening on a socket of its
    own (cli/reuse_port.py), so that connections spread evenly across them."""
    from jobgate.cli.reuse_port import serve_workers

    try:
        serve_workers("jobgate.api.app:served_app", workers, host, port, access_log)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
