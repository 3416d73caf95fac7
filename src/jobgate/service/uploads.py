"""Files sent with a job: gathered and checked in a staging directory first,
then moved into the job's working directory inside the transaction that
writes the job, so that the engine never sees the job without them, and a
failure leaves neither a job nor a file behind.

Staging lives under `$JOBGATE_HOME/uploads`, on the same file system as the
default working directories, so placing a file is a hard link, not a copy.
Every byte is counted as it is written (a zip's headers are not trusted).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy.orm import Session

from jobgate.config import Settings
from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.errors import InvalidSpecError, TooLargeError
from jobgate.service.auth import Principal
from jobgate.service.idempotency import Answer, IdempotentSubmit
from jobgate.service.jobs import JobService
from jobgate.service.paths import real_directory, relative_parts

log = logging.getLogger(__name__)

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class UploadLimits:
    total_bytes: int
    files: int
    file_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> UploadLimits:
        return cls(settings.upload_max_total_bytes, settings.upload_max_files,
                   settings.upload_max_file_bytes)


class Staging:
    """The files of one submission, before the job exists."""

    def __init__(self, parent: Path, limits: UploadLimits) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="upload-", dir=parent))
        self.tree = self.path / "tree"
        self.tree.mkdir()
        self.limits = limits
        self.total = 0  # bytes of the files
        self.archive_bytes = 0  # of the archive while it is not unpacked
        self.files: dict[str, str] = {}  # relative path -> sha256 of the content
        self.dirs: set[str] = set()
        self.archive: Path | None = None

    def new_file(self, name: str, field: str, *, executable: bool = False) -> StagedFile:
        """A file to write at `name` (relative, with /).

        Raises:
            InvalidSpecError: a bad name, or one sent twice or clashing with a directory.
            TooLargeError: one file more than upload_max_files.
        """
        parts = relative_parts(name, field, strict=True)
        relative = "/".join(parts)
        if relative in self.files or relative in self.dirs:
            raise InvalidSpecError(field, name, "sent twice")
        if len(self.files) + 1 > self.limits.files:
            raise TooLargeError("upload_max_files", self.limits.files,
                                f"{field} {name}: the number of files")
        self._make_dirs(parts[:-1], field, name)
        try:
            fd = os.open(self.tree / relative, _WRITE_FLAGS, 0o755 if executable else 0o644)
        except OSError as exc:  # a directory of that name, say
            raise InvalidSpecError(field, name, f"clashes with another entry ({exc.strerror})"
                                   ) from exc
        self.files[relative] = ""
        return StagedFile(self, relative, field, fd)

    def new_dir(self, name: str, field: str) -> None:
        """Raises:
        InvalidSpecError: a bad name, or one clashing with a file.
        """
        parts = relative_parts(name, field, strict=True)
        self._make_dirs(parts, field, name)

    def _make_dirs(self, parts: list[str], field: str, name: str) -> None:
        for depth in range(1, len(parts) + 1):
            relative = "/".join(parts[:depth])
            if relative in self.dirs:
                continue
            if relative in self.files:
                raise InvalidSpecError(field, name, f"{relative} is a file, not a directory")
            (self.tree / relative).mkdir()
            self.dirs.add(relative)

    def new_archive(self, name: str) -> StagedArchive:
        """Where the zip archive is kept until it is unpacked.

        Raises:
            InvalidSpecError: a second archive.
        """
        if self.archive is not None:
            raise InvalidSpecError("archive", name, "send at most one archive")
        self.archive = self.path / "archive.zip"
        return StagedArchive(self, os.open(self.archive, _WRITE_FLAGS, 0o600))

    def check_total(self, what: str) -> None:
        """Raises:
        TooLargeError: past upload_max_total_bytes.
        """
        if self.total + self.archive_bytes > self.limits.total_bytes:
            raise TooLargeError("upload_max_total_bytes", self.limits.total_bytes,
                                f"{what}: the bytes of all files")

    def unpack(self) -> None:
        """Unpack the archive, if one was sent, into the staged tree.

        Raises:
            InvalidSpecError: not a zip, or an entry that is refused (named).
            TooLargeError: past a limit.
        """
        if self.archive is None:
            return
        from jobgate.service.archive import unpack_zip

        self.archive_bytes = 0  # what counts now is what it holds
        unpack_zip(self.archive, self)
        self.archive.unlink()
        self.archive = None

    def digest(self) -> str:
        """What was sent, as one hash (part of an Idempotency-Key's request)."""
        if not self.files and not self.dirs:
            return ""
        summary = [f"{name}\0{self.files[name]}" for name in sorted(self.files)]
        summary += [f"{name}/" for name in sorted(self.dirs)]
        return hashlib.sha256("\n".join(summary).encode()).hexdigest()

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class StagedFile:
    def __init__(self, staging: Staging, name: str, field: str, fd: int) -> None:
        self.staging = staging
        self.name = name
        self.field = field
        self.fd = fd
        self.size = 0
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> None:
        """Raises:
        TooLargeError: past upload_max_file_bytes or upload_max_total_bytes.
        """
        self.size += len(data)
        self.staging.total += len(data)
        self.staging.check_total(f"{self.field} {self.name}")
        if self.size > self.staging.limits.file_bytes:
            raise TooLargeError("upload_max_file_bytes", self.staging.limits.file_bytes,
                                f"{self.field} {self.name}: the size of this file")
        self.hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self.staging.files[self.name] = self.hash.hexdigest()

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class StagedArchive:
    def __init__(self, staging: Staging, fd: int) -> None:
        self.staging = staging
        self.fd = fd

    def write(self, data: bytes) -> None:
        """Raises:
        TooLargeError: the archive alone passes upload_max_total_bytes.
        """
        self.staging.archive_bytes += len(data)
        self.staging.check_total("archive")
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Placement:
    """Moves the staged files into a job's working directory, and undoes that."""

    def __init__(self, staging: Staging, jobs_dir: Path) -> None:
        self.staging = staging
        self.jobs_dir = jobs_dir
        self.job_id: int | None = None
        self.root: Path | None = None
        self.made: list[Path] = []  # in the order made
        self._inside: set[Path] = set()  # directories found inside the root

    def place(self, record: JobRecord) -> None:
        """Raises:
        InvalidSpecError: an uploaded name that exists in the working directory
            already, or leads out of it through a link.
        """
        self.job_id = record.id
        if Path(record.working_directory) == self.jobs_dir / str(record.id):
            # The default directory is made at launch, unless files come first.
            Path(record.working_directory).mkdir(parents=True, exist_ok=True)
        root = real_directory(record.working_directory, "working directory")
        self.root = root
        for relative in sorted(self.staging.dirs):
            target = self._target(root, relative)
            if target.is_dir() and not target.is_symlink():
                continue
            try:
                target.mkdir()
            except OSError as exc:
                raise InvalidSpecError("files", relative, "exists in the working directory "
                                       f"already, not as a directory ({exc.strerror})") from exc
            self.made.append(target)
        for relative in sorted(self.staging.files):
            target = self._target(root, relative)
            source = self.staging.tree / relative
            try:
                os.link(source, target, follow_symlinks=False)
            except FileExistsError as exc:
                raise InvalidSpecError("files", relative, "exists in the working directory "
                                       "already; jobgate does not overwrite files") from exc
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                _copy(source, target)  # another file system
            self.made.append(target)

    def _target(self, root: Path, relative: str) -> Path:
        """Raises:
        InvalidSpecError: a directory on the way is a link that leads outside.
        """
        target = root / relative
        if target.parent not in self._inside:  # resolve each directory once
            parent = Path(os.path.realpath(target.parent))
            if parent != root and root not in parent.parents:
                raise InvalidSpecError("files", relative, "a directory of this name in the "
                                       "working directory is a link that leads outside it")
            self._inside.add(target.parent)
        return target

    def undo(self) -> None:
        """Remove what `place` made (the job was not committed)."""
        for path in reversed(self.made):
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            except OSError:
                log.warning("could not remove %s after a failed upload", path)
        self.made = []
        if self.job_id is not None and self.root == self.jobs_dir / str(self.job_id):
            # The default directory of an id no job holds: leave nothing for
            # whichever job is given this id next.
            shutil.rmtree(self.root, ignore_errors=True)


class UploadSubmit:
    def __init__(self, jobs: JobService, idempotent: IdempotentSubmit) -> None:
        self.jobs = jobs
        self.idempotent = idempotent

    def staging(self) -> Staging:
        return Staging(self.jobs.settings.resolved_home / "uploads",
                       UploadLimits.of(self.jobs.settings))

    def submit(
        self, spec: JobSpec, user: Principal, staging: Staging,
        render: Callable[[JobRecord], dict[str, Any]], idempotency_key: str | None = None,
    ) -> Answer:
        """Submit a job with the staged files in its working directory: both are
        committed, or neither.

        Raises:
            InvalidSpecError: a bad spec or file, an array job without a
                working_directory shared by its tasks; what `JobService.submit` raises.
            TooLargeError: past an upload limit.
        """
        staging.unpack()
        resolved, _, _ = self.jobs.validate(spec)
        if resolved.array and resolved.working_directory is None \
                and (staging.files or staging.dirs):
            raise InvalidSpecError("array", resolved.array, "files sent with an array job "
                                   "need a working_directory that its tasks share")
        placement = Placement(staging, self.jobs.settings.jobs_dir)

        def on_record(_session: Session, record: JobRecord) -> None:
            placement.place(record)

        try:
            if idempotency_key is None:
                status, body = 201, render(self.jobs.submit(spec, user, on_record=on_record))
            else:
                status, body = self.idempotent.submit(
                    spec, user, idempotency_key, render, content_digest=staging.digest(),
                    on_record=on_record)
        except BaseException:
            placement.undo()
            raise
        if placement.job_id is not None and body.get("id") != placement.job_id:
            placement.undo()  # the same key won a race elsewhere: our job was rolled back
        return status, body


def _copy(source: Path, target: Path) -> None:
    fd = os.open(target, _WRITE_FLAGS, source.stat().st_mode & 0o777)
    with os.fdopen(fd, "wb") as out, source.open("rb") as data:
        shutil.copyfileobj(data, out, 1024 * 1024)
