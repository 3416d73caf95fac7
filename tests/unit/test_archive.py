"""Unpacking zips into a staging area: sizes are counted, never read off headers."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from jobgate.errors import InvalidSpecError, TooLargeError
from jobgate.service.archive import unpack_zip
from jobgate.service.paths import relative_parts
from jobgate.service.uploads import Staging, UploadLimits


def zip_claiming(data: bytes, claimed: int) -> bytes:
    """A one-entry zip whose headers claim `claimed` bytes uncompressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("entry", data)
    raw = bytearray(buffer.getvalue())
    local = raw.index(b"PK\x03\x04")
    central = raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, claimed)
    struct.pack_into("<I", raw, central + 24, claimed)
    return bytes(raw)


def staged(tmp_path: Path, archive: bytes, **limits: int) -> Staging:
    staging = Staging(tmp_path / "uploads", UploadLimits(
        limits.get("total", 10_000), limits.get("files", 10), limits.get("file", 1000)))
    assert staging.archive is None
    writer = staging.new_archive("a.zip")
    writer.write(archive)
    writer.close()
    return staging


def test_a_header_claiming_less_does_not_let_more_through(tmp_path: Path) -> None:
    staging = staged(tmp_path, zip_claiming(b"\0" * 1_000_000, 10))
    with pytest.raises(InvalidSpecError) as caught:
        staging.unpack()
    assert "'entry'" in caught.value.message
    staging.discard()
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())


def test_a_header_claiming_more_is_not_believed(tmp_path: Path) -> None:
    staging = staged(tmp_path, zip_claiming(b"x" * 50, 4_000_000_000))
    staging.unpack()
    assert (staging.tree / "entry").read_bytes() == b"x" * 50
    assert staging.total == 50


def test_the_real_bytes_are_counted(tmp_path: Path) -> None:
    staging = staged(tmp_path, zip_claiming(b"\0" * 5000, 5000), file=1000)
    with pytest.raises(TooLargeError) as caught:
        staging.unpack()
    assert caught.value.limit == "upload_max_file_bytes"


def test_too_many_entries_are_refused_before_the_directory_is_read(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(50):
            archive.writestr(f"d{i}/", b"")
    staging = staged(tmp_path, buffer.getvalue(), files=10)
    with pytest.raises(TooLargeError) as caught:
        staging.unpack()
    assert caught.value.limit == "upload_max_files"


def test_unpack_zip_names_a_missing_archive_as_not_a_zip(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "uploads", UploadLimits(10, 10, 10))
    (tmp_path / "bad.zip").write_bytes(b"PK\x05\x06 too short")
    with pytest.raises(InvalidSpecError):
        unpack_zip(tmp_path / "bad.zip", staging)


@pytest.mark.parametrize(("path", "parts"), [
    ("a/b", ["a", "b"]), ("./a//b/", ["a", "b"]), ("", []), ("a b/c", ["a b", "c"]),
])
def test_relative_parts(path: str, parts: list[str]) -> None:
    assert relative_parts(path, "path") == parts


@pytest.mark.parametrize("path", ["/etc", "..", "a/../..", "a/..", "a\0b"])
def test_relative_parts_refused(path: str) -> None:
    with pytest.raises(InvalidSpecError):
        relative_parts(path, "path")


def test_strict_names() -> None:
    for bad in ("", ".", "a\\b"):
        with pytest.raises(InvalidSpecError):
            relative_parts(bad, "files", strict=True)
