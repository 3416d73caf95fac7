"""How a batch script runs, on every backend: by its `#!` line, as sbatch runs it."""

from __future__ import annotations

from pathlib import Path


def script_argv(script: str, path: Path) -> list[str]:
    """The command line that runs the user's script at `path`: its `#!` line as
    the kernel reads it (interpreter and one optional argument), without the
    file needing to be executable; bash when it has none."""
    first = script.split("\n", 1)[0]
    if first.startswith("#!"):
        interpreter, _, argument = first[2:].strip().partition(" ")
        if interpreter:
            return [interpreter, *([argument.strip()] if argument.strip() else []), str(path)]
    return ["/bin/bash", str(path)]
