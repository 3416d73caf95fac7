"""A job's working directory over the API: list it, download from it."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

from jobgate.domain.states import JobState
from jobgate.errors import InvalidSpecError
from jobgate.service.auth import Principal
from jobgate.service.jobs import JobService, refuse_registry
from jobgate.service.paths import inside, open_beneath, real_directory, relative_parts

MAX_LISTING = 10_000

FileType = Literal["file", "dir", "symlink", "other"]


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the working directory, with /
    type: FileType
    size: int
    mtime: datetime


@dataclass(frozen=True)
class Download:
    file: BinaryIO
    size: int  # as it was when opened: a file still written stops there
    name: str


class JobFiles:
    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs

    def list(
        self, job_id: int, user: Principal, *, path: str = "", limit: int = MAX_LISTING
    ) -> tuple[list[FileEntry], bool]:
        """What the job's working directory (or a directory in it) holds, all the
        way down, sorted by path, and whether the listing stopped at `limit`.
        Links are listed, not followed.

        Raises:
            NotFoundError: no such job (or not the caller's), or no such directory.
            InvalidSpecError: a bad path or limit, or a path that is not a directory.
            PermissionDeniedError: a path leading outside the working directory.
        """
        if not 1 <= limit <= MAX_LISTING:
            raise InvalidSpecError("limit", limit, f"must be between 1 and {MAX_LISTING}")
        job = self.jobs.get(job_id, user)
        if not path and job.state is JobState.PENDING \
                and job.working_directory == str(self.jobs.settings.jobs_dir / str(job_id)) \
                and not Path(job.working_directory).exists():
            return [], False  # the job's own directory is made when it starts
        root = self._root(job_id, user)
        start = inside(root, relative_parts(path, "path"), "path")
        with open_beneath(root, start, "path") as fd:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise InvalidSpecError("path", path, "not a directory; download it from "
                                       f"/v1/jobs/{job_id}/files/{path}")
        return _walk(root, "/".join(start), limit)

    def open(self, job_id: int, user: Principal, path: str) -> Download:
        """One regular file of the job's working directory, opened for reading.

        Raises:
            NotFoundError: no such job (or not the caller's), or no such file.
            InvalidSpecError: an absolute path, `..`, or not a regular file.
            PermissionDeniedError: a symbolic link leading outside the working directory.
        """
        parts = relative_parts(path, "path")
        root = self._root(job_id, user)
        with open_beneath(root, parts, "path") as fd:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise InvalidSpecError("path", path, "a directory; list it with "
                                       f"/v1/jobs/{job_id}/files?path={path}")
            if not stat.S_ISREG(info.st_mode):
                raise InvalidSpecError("path", path, "not a regular file")
            os.set_blocking(fd, True)
            handle = os.fdopen(os.dup(fd), "rb")
        return Download(handle, info.st_size, parts[-1] if parts else "")

    def _root(self, job_id: int, user: Principal) -> Path:
        job = self.jobs.get(job_id, user)
        # A registry job's directory is a path another scheduler reported: never
        # one to serve from this host.
        refuse_registry(job, "files")
        return real_directory(job.working_directory, f"job {job_id}'s working directory")


def _walk(root: Path, start: str, limit: int) -> tuple[list[FileEntry], bool]:
    """Depth first, each directory in name order; stops after `limit` entries."""
    entries: list[FileEntry] = []
    pending = [start]
    while pending:
        relative = pending.pop()
        try:
            with os.scandir(root / relative) as listing:
                children = sorted(listing, key=lambda e: e.name)
        except OSError:
            continue  # unreadable, or gone meanwhile
        subdirs = []
        for child in children:
            if len(entries) == limit:
                return _sorted(entries), True
            name = f"{relative}/{child.name}" if relative else child.name
            try:
                info = child.stat(follow_symlinks=False)
            except OSError:
                continue
            kind = _kind(info.st_mode)
            entries.append(FileEntry(name, kind, info.st_size if kind != "dir" else 0,
                                     datetime.fromtimestamp(info.st_mtime, UTC)))
            if kind == "dir":
                subdirs.append(name)
        pending.extend(reversed(subdirs))
    return _sorted(entries), False


def _sorted(entries: list[FileEntry]) -> list[FileEntry]:
    return sorted(entries, key=lambda e: e.path)


def _kind(mode: int) -> FileType:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"
