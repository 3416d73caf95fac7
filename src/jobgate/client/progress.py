"""Counting the bytes of an upload as httpx sends them (for progress bars).

httpx streams a multipart body by reading each file 64 KiB at a time while it
writes to the socket; wrapping the files in `CountingFile` therefore reports
the bytes as they leave, not as they are prepared. A retry seeks each file back
to its start, and the count goes back with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import BinaryIO

__all__ = ["CountingFile", "Progress", "UploadCounter"]

# Called with (bytes sent so far, bytes to send in all).
Progress = Callable[[int, int], None]


class UploadCounter:
    """The sum of the read positions of a request's files, told to `callback`."""

    def __init__(self, callback: Progress, handles: Sequence[BinaryIO]) -> None:
        self.callback = callback
        self.total = sum(os.fstat(handle.fileno()).st_size for handle in handles)
        self._positions = [0] * len(handles)
        self.files = [CountingFile(handle, self, index) for index, handle in enumerate(handles)]

    def moved(self, index: int, position: int) -> None:
        self._positions[index] = position
        self.callback(sum(self._positions), self.total)


class CountingFile:
    """A file read through: what httpx reads of it is counted."""

    def __init__(self, handle: BinaryIO, counter: UploadCounter, index: int) -> None:
        self._handle = handle
        self._counter = counter
        self._index = index
        self.name = handle.name

    def fileno(self) -> int:
        return self._handle.fileno()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._counter.moved(self._index, self._handle.tell())
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        self._counter.moved(self._index, position)
        return position

    def tell(self) -> int:
        return self._handle.tell()
