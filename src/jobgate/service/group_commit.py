"""Group commit: requests that arrive while a transaction is being written are
written together in the next one.

Each submission used to be a transaction of its own: a turn at the store's
write lock, a BEGIN, a COMMIT (and on SQLite a write of the WAL), and a thread
woken per turn. Under load, sixteen submitters waited in line for sixteen
turns. Here the first caller to find no transaction under way becomes the
leader: it takes every request waiting (its own first), writes them in one
transaction, hands each caller its own answer, and then passes the lead to the
first caller who arrived meanwhile. A caller alone writes at once, on its own
thread: no added wait when the gateway is idle.

If a transaction of several fails, each of its requests is written again on its
own, so that one bad request fails alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Requests at most per transaction: a batch this size still commits in a few ms.
MAX_GROUP = 256


class _Waiter(Generic[Item, Result]):
    __slots__ = ("done", "error", "item", "lead", "result")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = threading.Event()
        self.lead = False  # woken to lead, not with an answer
        self.result: Result | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    """Run `write(items) -> results` (one result per item, in order, in one
    transaction) for requests of many threads at once."""

    def __init__(self, write: Callable[[Sequence[Item]], Sequence[Result]],
                 max_group: int = MAX_GROUP) -> None:
        self._write = write
        self.max_group = max_group
        self._lock = threading.Lock()
        self._waiting: list[_Waiter[Item, Result]] = []
        self._leading = False

    def run(self, item: Item) -> Result:
        """Write `item` with whatever else is waiting; its own result.

        Raises:
            whatever writing it alone raised.
        """
        waiter: _Waiter[Item, Result] = _Waiter(item)
        with self._lock:
            self._waiting.append(waiter)
            lead = not self._leading
            self._leading = True
        if not lead:
            waiter.done.wait()
            if waiter.lead:
                waiter.done.clear()
                lead = True
        if lead:
            self._lead()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            group = self._waiting[:self.max_group]
            del self._waiting[:self.max_group]
        try:
            self._write_group(group)
        finally:
            with self._lock:
                if self._waiting:
                    successor = self._waiting[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._leading = False

    def _write_group(self, group: list[_Waiter[Item, Result]]) -> None:
        try:
            results = self._write([waiter.item for waiter in group])
        except BaseException as exc:
            if len(group) == 1:
                group[0].error = exc
                group[0].done.set()
                return
            for waiter in group:  # apart, so that the bad one fails alone
                self._write_group([waiter])
            return
        for waiter, result in zip(group, results, strict=True):
            waiter.result = result
        # The leader's own answer is among them; wake the others.
        for waiter in group:
            waiter.done.set()
