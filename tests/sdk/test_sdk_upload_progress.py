"""`Client.submit(files=..., progress=cb)`: the bytes are counted as httpx sends them."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from jobgate import Client, JobState


def test_progress_counts_every_byte_of_the_files(client: Client, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1_000_000))
    small = tmp_path / "small.txt"
    small.write_text("hello\n")
    with zipfile.ZipFile(tmp_path / "in.zip", "w") as zf:
        zf.writestr("inner.txt", "zipped\n")
    total = sum(p.stat().st_size for p in (big, small, tmp_path / "in.zip"))
    seen: list[tuple[int, int]] = []

    job = client.submit("#!/bin/bash\nwc -c < big.bin; cat small.txt inner.txt\n",
                        files=[big, small], archive=tmp_path / "in.zip",
                        progress=lambda sent, whole: seen.append((sent, whole)))

    assert {whole for _, whole in seen} == {total}
    sent = [s for s, _ in seen]
    assert sent == sorted(sent) and sent[-1] == total
    assert len(set(sent)) > 3  # in 64 KiB steps, not all at once at the end
    assert job.wait(timeout=60) is JobState.COMPLETED
    assert job.read_stdout() == "1000000\nhello\nzipped\n"


def test_no_files_no_progress_calls(client: Client) -> None:
    seen: list[tuple[int, int]] = []
    job = client.submit(command="true", progress=lambda *a: seen.append(a))
    assert job.id and seen == []
