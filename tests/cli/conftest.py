"""Fixtures of the CLI tests: `jobgate` run as a real process against the live server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server_process import LiveServer, Run


@pytest.fixture
def jobgate_cli(server: LiveServer, tmp_path: Path) -> Run:
    """Run `python -m jobgate ARGS` in tmp_path against the server; never raises."""

    def run(*args: str, stdin: str | None = None, timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobgate", *args], input=stdin, cwd=tmp_path,
            env=server.env(**env), capture_output=True, text=True, timeout=timeout,
        )

    return run
