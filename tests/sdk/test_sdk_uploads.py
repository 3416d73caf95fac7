"""The SDK sends input files with a job, and deletes jobs (against a real server)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from jobgate import Client, ConflictError, InvalidSpecError, JobState, NotFoundError


def test_submit_with_files_and_an_archive(client: Client, tmp_path: Path, tag: str) -> None:
    (tmp_path / "params.txt").write_text("alpha=1\n")
    archive = tmp_path / "inputs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/values.csv", "1,2,3\n")
    job = client.submit(command="cat params.txt data/values.csv", tags=[tag],
                        files=[tmp_path / "params.txt"], archive=archive)
    assert job.wait(timeout=30) is JobState.COMPLETED
    assert job.read_stdout() == "alpha=1\n1,2,3\n"


def test_a_refused_archive_entry_is_named(client: Client, tmp_path: Path, tag: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil", "x")
    with pytest.raises(InvalidSpecError) as caught:
        client.submit(command="true", tags=[tag], archive=archive)
    assert "../evil" in caught.value.message
    assert client.list(tag=tag) == []


def test_delete(client: Client, tag: str) -> None:
    job = client.submit(command="true", tags=[tag], hold=True)
    with pytest.raises(ConflictError):
        client.delete(job.id)
    client.delete(job.id, force=True)
    with pytest.raises(NotFoundError):
        client.get(job.id)
    with pytest.raises(NotFoundError):
        client.delete(job.id)
