"""Paths inside a job's directory that cannot lead out of it.

A name sent by a client (a download path, an uploaded file's name, a zip entry)
is checked as text first: no absolute path, no `..`. Then, on the disk,
`open_beneath` resolves symbolic links and refuses whatever lands outside, and
opens every component without following a link, so that a link swapped in
between the check and the open cannot lead out either.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobgate.errors import InvalidSpecError, NotFoundError, PermissionDeniedError

MAX_PATH_LENGTH = 4096


def relative_parts(path: str, field: str, *, strict: bool = False) -> list[str]:
    """The components of a relative path (`.` and empty ones dropped).

    `strict` (names of files to write) also refuses backslashes and a path
    with no component.

    Raises:
        InvalidSpecError: an absolute path, a `..` component, a NUL byte, an
            overlong path; with `strict`, a backslash or an empty path.
    """
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidSpecError(field, path[:80], f"longer than {MAX_PATH_LENGTH} characters")
    if "\0" in path:
        raise InvalidSpecError(field, path, "contains a NUL byte")
    if path.startswith("/"):
        raise InvalidSpecError(field, path, "an absolute path; give a path relative to "
                               "the job's working directory")
    if strict and "\\" in path:
        raise InvalidSpecError(field, path, "contains a backslash; separate directories with /")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidSpecError(field, path, "`..` would lead outside the job's working "
                               "directory")
    if strict and not parts:
        raise InvalidSpecError(field, path, "an empty file name")
    return parts


def real_directory(path: str | Path, what: str) -> Path:
    """`path` with its links resolved, which must be an existing directory.

    Raises:
        NotFoundError: it does not exist (or is not a directory).
    """
    real = Path(os.path.realpath(path))
    if not real.is_dir():
        raise NotFoundError(f"{what} {path} does not exist (any more)")
    return real


def inside(root: Path, parts: list[str], field: str) -> list[str]:
    """The components, below `root` (a real directory), of where `parts` lead
    once symbolic links are resolved.

    Raises:
        PermissionDeniedError: a link leads outside `root`.
    """
    target = os.path.realpath(os.path.join(root, *parts))
    if target == str(root):
        return []
    if not target.startswith(str(root) + os.sep):
        raise PermissionDeniedError(
            f"{field}: {'/'.join(parts)} is a symbolic link that leads outside the job's "
            "working directory", details={"field": field, "path": "/".join(parts)})
    return list(Path(target).relative_to(root).parts)


@contextmanager
def open_beneath(root: Path, parts: list[str], field: str) -> Iterator[int]:
    """A read-only descriptor of what `parts` name below `root`, opened one
    component at a time without following links (see the module's note).

    Raises:
        PermissionDeniedError: a link leads outside `root`, or one was swapped in.
        NotFoundError: nothing there.
    """
    resolved = inside(root, parts, field)
    shown = "/".join(parts) or "."
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, part in enumerate(resolved):
            last = index == len(resolved) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            if not last:
                flags |= os.O_DIRECTORY
            try:
                next_fd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError as exc:
                raise NotFoundError(f"no file {shown} in the job's working directory",
                                    details={"field": field, "path": shown}) from exc
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise PermissionDeniedError(
                        f"{field}: {shown} changed while being opened",
                        details={"field": field, "path": shown}) from exc
                if exc.errno == errno.EACCES:
                    raise PermissionDeniedError(f"{field}: {shown} cannot be read",
                                                details={"field": field, "path": shown}
                                                ) from exc
                raise
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)
