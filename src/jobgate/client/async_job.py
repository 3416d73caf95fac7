"""`AsyncJob`: the snapshot `AsyncClient` returns, with the sync Job's verbs awaitable.

The attributes are those of `Job` (read from the snapshot: an attribute read
cannot await, so it never fetches; `await job.reload()` does). The verbs have
the sync Job's names and arguments and are coroutines: ``await job.cancel()``.
They override Job's sync verbs with async ones on purpose (hence the
`type: ignore[override]`): code written for one client reads the same for the
other, with `await`.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jobgate.client.errors import WaitTimeout
from jobgate.client.job import WAIT_SLICE, Job, _states
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState

if TYPE_CHECKING:
    from jobgate.client.aio import AsyncClient

__all__ = ["AsyncJob"]


class AsyncJob(Job):
    """A job as `AsyncClient` saw it; `await` its verbs.

    Raises (every verb): as the sync `Job`'s verb of the same name.
    """

    def __init__(self, job_id: int, aclient: AsyncClient) -> None:
        super().__init__(job_id, auto_update=False, frozen=True)
        self.aclient = aclient

    def _take(self, fresh: Job) -> AsyncJob:
        self._set(fresh.to_dict())
        return self

    async def update(self, flushcache: bool = False) -> AsyncJob:  # type: ignore[override]
        """Fetch the job again (always: a snapshot has no cache to keep)."""
        return self._take(await self.aclient.get(self.id))

    async def reload(self) -> AsyncJob:  # type: ignore[override]
        """Fetch the job again now."""
        return self._take(await self.aclient.get(self.id))

    refresh = reload  # type: ignore[assignment]

    async def cancel(self) -> AsyncJob:  # type: ignore[override]
        return self._take(await self.aclient.cancel(self.id))

    async def hold(  # type: ignore[override]
        self, mode: Literal["user", "admin"] | None = None
    ) -> AsyncJob:
        return self._take(await self.aclient.hold(self.id, mode or "user"))

    async def release(self) -> AsyncJob:  # type: ignore[override]
        return self._take(await self.aclient.release(self.id))

    async def suspend(self) -> AsyncJob:  # type: ignore[override]
        return self._take(await self.aclient.suspend(self.id))

    async def unsuspend(self) -> AsyncJob:  # type: ignore[override]
        return self._take(await self.aclient.resume(self.id))

    resume = unsuspend  # type: ignore[assignment]

    async def requeue(self, hold: bool = False) -> AsyncJob:  # type: ignore[override]
        return self._take(await self.aclient.requeue(self.id, hold=hold))

    async def send_signal(self, signal: str | int) -> AsyncJob:  # type: ignore[override]
        return self._take(await self.aclient.signal(self.id, signal))

    async def notify(self, msg: str) -> AsyncJob:  # type: ignore[override]
        return self._take(await self.aclient.notify(self.id, msg))

    async def modify(  # type: ignore[override]
        self, changes: JobSpec | dict[str, Any] | None = None, **fields: Any
    ) -> AsyncJob:
        return self._take(await self.aclient.modify(self.id, changes, **fields))

    async def delete(self, force_abort: bool = False) -> None:  # type: ignore[override]
        await self.aclient.delete(self.id, force=force_abort)

    async def get_batch_script(self) -> str:  # type: ignore[override]
        return await self.aclient.script(self.id)

    async def load_stats(self) -> dict[str, Any]:  # type: ignore[override]
        self.stats = await self.aclient.job_stats(self.id)
        return self.stats

    async def wait(  # type: ignore[override]
        self, until: JobState | str | Iterable[JobState | str] | None = None,
        timeout: float | None = None,
    ) -> JobState:
        """Wait on the gateway's wait endpoint until final (or in `until`).

        Raises:
            WaitTimeout: not there after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        targets = _states(until)
        while True:
            left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            self._take(await self.aclient.wait_for(
                self.id, timeout=max(0.0, min(left, WAIT_SLICE)), states=targets))
            state = self.state
            if state.final or state in targets:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {self.id} is still {state.value} after {timeout:g} s",
                                  details={"job_id": self.id, "state": state.value})

    async def read_stdout(self, offset: int = 0) -> str:  # type: ignore[override]
        return await self.aclient.output(self.id, "stdout", offset=offset)

    async def read_stderr(self, offset: int = 0) -> str:  # type: ignore[override]
        return await self.aclient.output(self.id, "stderr", offset=offset)

    async def files(self, path: str = "") -> list[dict[str, Any]]:  # type: ignore[override]
        return await self.aclient.files(self.id, path)

    async def download(  # type: ignore[override]
        self, path: str, dest: str | Path | None = None
    ) -> Path:
        return await self.aclient.download(self.id, path, dest)

    def stdout(  # type: ignore[override]
        self, follow: bool = False, *, offset: int = 0
    ) -> AsyncIterator[str]:
        """Lines of the standard output: ``async for line in job.stdout(follow=True)``."""
        return self._async_lines("stdout", follow, offset)

    def stderr(  # type: ignore[override]
        self, follow: bool = False, *, offset: int = 0
    ) -> AsyncIterator[str]:
        """Lines of the standard error; see `stdout`."""
        return self._async_lines("stderr", follow, offset)

    async def _async_lines(self, stream: Literal["stdout", "stderr"], follow: bool,
                           offset: int) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        if follow:
            chunks = self.aclient.follow_output(self.id, stream, offset=offset)
        else:
            chunks = _one(await self.aclient.output(self.id, stream, offset=offset))
        async for chunk in chunks:
            pending += decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line + "\n"
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending

    async def events(self, after: int = 0) -> list[dict[str, Any]]:  # type: ignore[override]
        return await self.aclient.events(self.id, after=after)


async def _one(text: str) -> AsyncIterator[bytes]:
    yield text.encode("utf-8")
