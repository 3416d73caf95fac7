"""`jobgate submit --file F --zip Z`: the inputs travel with the job."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from jobgate import Client, JobState
from server_process import Run


def test_submit_with_a_file_and_a_zip(jobgate_cli: Run, client: Client, tmp_path: Path) -> None:
    (tmp_path / "job.sh").write_text("#!/bin/bash\ncat input.txt lib/helper.txt\npwd\n")
    (tmp_path / "input.txt").write_text("from --file\n")
    with zipfile.ZipFile(tmp_path / "lib.zip", "w") as zf:
        zf.writestr("lib/helper.txt", "from --zip\n")
    result = jobgate_cli("submit", "job.sh", "--file", "input.txt", "--zip", "lib.zip")
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"Submitted batch job (\d+)\n", result.stdout)
    assert match, result.stdout
    job = client.get(int(match.group(1)))
    assert job.wait(timeout=60) is JobState.COMPLETED
    lines = job.read_stdout().splitlines()
    assert lines[:2] == ["from --file", "from --zip"]
    # A directory of its own, not the one the command ran in.
    assert lines[2] != str(tmp_path) and lines[2].endswith(f"/jobs/{job.id}")


def test_a_missing_file_is_a_usage_error(jobgate_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "job.sh").write_text("#!/bin/bash\ntrue\n")
    result = jobgate_cli("submit", "job.sh", "--file", "nope.txt")
    assert result.returncode == 2
    assert "nope.txt" in result.stderr
