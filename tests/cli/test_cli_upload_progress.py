"""`jobgate submit --file F --progress`: a bar of bytes on stderr, stdout unchanged."""

from __future__ import annotations

import os
import re
from pathlib import Path

from server_process import Run


def test_progress_bar_on_stderr(jobgate_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(os.urandom(2_000_000))

    shown = jobgate_cli("submit", "--wrap", "wc -c < data.bin", "--file", "data.bin",
                        "--progress", COLUMNS="100")

    assert shown.returncode == 0, shown.stderr
    assert re.fullmatch(r"Submitted batch job \d+\n", shown.stdout)
    assert "upload" in shown.stderr and "2.0/2.0 MB" in shown.stderr, shown.stderr

    quiet = jobgate_cli("submit", "--wrap", "true", "--file", "data.bin")
    assert quiet.returncode == 0 and quiet.stderr == ""  # not a terminal: no bar
