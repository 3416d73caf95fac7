"""Unpacking a zip archive sent with a job, refusing what could escape or lie.

Refused, with the entry named: `..` and absolute paths, backslashes, symbolic
links, device files, FIFOs and sockets (the Unix file type in the entry's
`external_attr`), encrypted entries. Sizes are counted on the bytes actually
inflated, never on the sizes the headers claim (a zip bomb stops at the limit).
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from jobgate.errors import InvalidSpecError, TooLargeError

if TYPE_CHECKING:
    from jobgate.service.uploads import Staging

CHUNK = 256 * 1024
_SPECIAL = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFCHR: "a device file",
    stat.S_IFBLK: "a device file",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def check_entry(info: zipfile.ZipInfo) -> None:
    """Raises:
    InvalidSpecError: naming the entry and why it is refused.
    """
    from jobgate.service.paths import relative_parts

    name = info.filename
    field = f"archive entry {name!r}"
    parts = relative_parts(name, field)
    if "\\" in name:
        raise InvalidSpecError(field, name, "contains a backslash; separate directories with /")
    if not parts and not info.is_dir():
        raise InvalidSpecError(field, name, "an empty file name")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind in _SPECIAL:
        raise InvalidSpecError(f"archive entry {name!r}", name,
                               f"{_SPECIAL[kind]}; only files and directories are unpacked")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise InvalidSpecError(f"archive entry {name!r}", name, "an unknown file type")
    if info.flag_bits & 0x1:
        raise InvalidSpecError(f"archive entry {name!r}", name, "encrypted")


def unpack_zip(path: Path, staging: Staging) -> None:
    """Check every entry, then unpack them all into the staging tree.

    Raises:
        InvalidSpecError: not a zip archive, a refused or corrupt entry (named).
        TooLargeError: past upload_max_files, upload_max_file_bytes or
            upload_max_total_bytes.
    """
    _check_entry_count(path, staging)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise InvalidSpecError("archive", path.name, f"not a zip archive ({exc})") from exc
    with archive:
        entries = archive.infolist()
        for info in entries:
            check_entry(info)
        files = [info for info in entries if not info.is_dir()]
        if len(staging.files) + len(files) > staging.limits.files:
            raise TooLargeError("upload_max_files", staging.limits.files,
                                f"archive: {len(files)} files (with the other parts)")
        for info in entries:
            if info.is_dir():
                if info.filename.strip("/."):
                    staging.new_dir(info.filename, "archive")
                continue
            executable = bool((info.external_attr >> 16) & stat.S_IXUSR)
            try:
                with archive.open(info) as source, \
                        staging.new_file(info.filename, "archive", executable=executable) as out:
                    while chunk := source.read(CHUNK):
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                    RuntimeError, ValueError) as exc:
                raise InvalidSpecError(f"archive entry {info.filename!r}", info.filename,
                                       f"cannot be unpacked ({exc})") from exc


def _check_entry_count(path: Path, staging: Staging) -> None:
    """Refuse an archive of too many entries from its end record, before
    reading its central directory (a million entries would be a lot of memory).

    Raises:
        TooLargeError: more entries than upload_max_files allows.
    """
    end_record = getattr(zipfile, "_EndRecData", None)
    if end_record is None:
        return  # the full check after reading the directory still holds
    with path.open("rb") as handle:
        try:
            record = end_record(handle)
        except OSError:
            return
    if record is None:
        return  # not a zip: ZipFile says so
    entries = int(record[getattr(zipfile, "_ECD_ENTRIES_TOTAL", 4)])
    # Directories count too here, so allow as many again for them.
    if entries > 2 * staging.limits.files + 1:
        raise TooLargeError("upload_max_files", staging.limits.files,
                            f"archive: {entries} entries")
