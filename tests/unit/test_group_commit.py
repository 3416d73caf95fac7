"""GroupCommit: callers that arrive during a write share the next one, each gets
its own answer, and a bad request fails alone."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from jobgate.service.group_commit import GroupCommit


class Recorder:
    """A write that takes its time, so that callers pile up behind it."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.first_entered = threading.Event()
        self.release_first = threading.Event()

    def write(self, items: Sequence[int]) -> list[int]:
        if not self.groups and not self.first_entered.is_set():
            self.first_entered.set()
            self.release_first.wait(10)
        if any(item < 0 for item in items):
            raise ValueError(f"negative: {[i for i in items if i < 0]}")
        self.groups.append(list(items))
        return [item * 10 for item in items]


def run_threads(group: GroupCommit[int, int], items: Sequence[int],
                results: dict[int, object]) -> list[threading.Thread]:
    def call(item: int) -> None:
        try:
            results[item] = group.run(item)
        except ValueError as exc:
            results[item] = exc

    threads = [threading.Thread(target=call, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads


def test_callers_waiting_share_one_write_and_get_their_own_answer() -> None:
    recorder = Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder.write)
    results: dict[int, object] = {}
    first = run_threads(group, [1], results)
    assert recorder.first_entered.wait(10)
    waiting = run_threads(group, list(range(2, 12)), results)
    # They queue behind the first write; let it end once all are in line.
    while len(group._waiting) < 10:
        threading.Event().wait(0.01)
    recorder.release_first.set()
    for thread in first + waiting:
        thread.join(10)
    assert results == {item: item * 10 for item in range(1, 12)}
    assert recorder.groups[0] == [1]
    assert sorted(recorder.groups[1]) == list(range(2, 12))  # one write for all ten
    assert len(recorder.groups) == 2


def test_a_bad_request_fails_alone() -> None:
    recorder = Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder.write)
    results: dict[int, object] = {}
    first = run_threads(group, [1], results)
    assert recorder.first_entered.wait(10)
    waiting = run_threads(group, [2, -3, 4], results)
    while len(group._waiting) < 3:
        threading.Event().wait(0.01)
    recorder.release_first.set()
    for thread in first + waiting:
        thread.join(10)
    assert results[2] == 20 and results[4] == 40
    assert isinstance(results[-3], ValueError)
    assert sorted(item for g in recorder.groups for item in g) == [1, 2, 4]


def test_a_lone_caller_writes_on_its_own_thread() -> None:
    threads: list[str] = []

    def write(items: Sequence[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(write)
    assert group.run(5) == 5
    assert threads == [threading.current_thread().name]
    with pytest.raises(ValueError):
        GroupCommit(lambda items: (_ for _ in ()).throw(ValueError("no"))).run(1)
