"""The progress bar of `jobgate submit --file/--zip` (rich, on stderr)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from jobgate.client.progress import Progress as ProgressCallback


@contextmanager
def upload_bar(show: bool | None, label: str = "upload") -> Iterator[ProgressCallback | None]:
    """A callback that moves a bar of bytes sent; `show` None: only on a terminal.

    Stdout stays for the answer ("Submitted batch job N"), so the bar is drawn
    on stderr; off a terminal (--progress into a pipe) rich prints it once, done.
    """
    console = Console(stderr=True, highlight=False)
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        yield None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                   transient=console.is_terminal)
    with bar:
        task = bar.add_task(label, total=None)

        def moved(sent: int, total: int) -> None:
            bar.update(task, completed=sent, total=total)

        yield moved
