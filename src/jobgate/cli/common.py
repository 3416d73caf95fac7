"""What every command shares: the global options, the client, errors and output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from rich.console import Console

from jobgate.client import Client
from jobgate.errors import JobgateError


@dataclass(frozen=True)
class Options:
    """The global options, kept in the typer context for the subcommands."""

    url: str | None = None
    token: str | None = None


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one `error: ...` line to stderr and exit with `code`."""
    line = " ".join(message.split())  # one line, whatever the server put in it
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


@contextmanager
def connect(ctx: typer.Context) -> Iterator[Client]:
    """A client for the global options; any jobgate error ends the command cleanly."""
    options = ctx.find_object(Options) or Options()
    try:
        with Client(options.url, options.token) as client:
            yield client
    except JobgateError as exc:
        fail(exc.message)


def console() -> Console:
    """Rich output on stdout; when piped, no colours and no width limit (for grep)."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, width=100_000, no_color=True)


def print_json(data: Any) -> None:
    """JSON on stdout, as the API sent it."""
    typer.echo(json.dumps(data, indent=2))
