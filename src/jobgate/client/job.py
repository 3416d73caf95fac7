"""`Job`: the SDK's view of one job, with the verbs that act on it.

Attribute names are the API's (pyslurm's): times are aware UTC datetimes,
durations seconds, memory MiB. A `Job` is a snapshot; `refresh()` updates it.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from jobgate.client.errors import WaitTimeout
from jobgate.domain.states import JobState

if TYPE_CHECKING:
    from jobgate.client.client import Client

__all__ = ["Job"]

# Waiting starts with the caller's poll interval and backs off to this, so a
# long job costs a request every few seconds rather than five a second.
# The longest one wait request asks the gateway to hold (it allows 60 s).
WAIT_SLICE = 30.0


class Job(BaseModel):
    """A job as the gateway last reported it. Built by `Client`, not by hand."""

    # Unknown fields are ignored so that an older SDK works with a newer server.
    model_config = ConfigDict(extra="ignore")

    id: int
    name: str
    state: JobState
    state_reason: str | None = None
    final: bool = False
    held: bool = False
    user_name: str
    cluster: str
    partition: str
    account: str | None = None
    num_nodes: int
    ntasks: int
    cpus_per_task: int
    cpus: int
    memory: int | None = None
    memory_per_cpu: int | None = None
    gpus: int = 0
    time_limit: int | None = None
    priority: int = 0
    tags: list[str] = Field(default_factory=list)
    comment: str | None = None
    working_directory: str
    standard_output: str
    standard_error: str
    submit_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    run_time: int = 0
    exit_code: int | None = None
    exit_code_signal: int | None = None
    requeue_count: int = 0

    _client: Client = PrivateAttr()
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_api(cls, client: Client, data: dict[str, Any]) -> Job:
        """Build a job from the API's JSON, bound to the client that fetched it.

        Raises:
            pydantic.ValidationError: the answer is not a job.
        """
        job = cls.model_validate(data)
        job._client = client
        job._raw = dict(data)
        return job

    def __repr__(self) -> str:
        return f"Job(id={self.id}, name={self.name!r}, state={self.state.value})"

    @property
    def done(self) -> bool:
        """True once the job is in a final state (as of the last refresh)."""
        return self.state.final

    def to_dict(self) -> dict[str, Any]:
        """The job exactly as the API sent it (JSON types, every field)."""
        return dict(self._raw)

    def refresh(self) -> Job:
        """Fetch the job again and update this object in place.

        Raises:
            NotFoundError: the job is gone or no longer visible.
            JobgateError: any other error answer, or the gateway is unreachable.
        """
        self._update(self._client.get(self.id))
        return self

    def wait(self, timeout: float | None = None) -> JobState:
        """Wait until the job reaches a final state and return that state.

        The gateway answers as soon as the job ends (GET /v1/jobs/{id}/wait), so
        this neither polls nor lags.

        Raises:
            WaitTimeout: the job was not final after `timeout` seconds.
            JobgateError: an error answer, or the gateway is unreachable.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            self._update(self._client.wait_for(self.id, timeout=max(0.0, min(left, WAIT_SLICE))))
            if self.done:
                return self.state
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"job {self.id} is still {self.state.value} after {timeout:g} s",
                    details={"job_id": self.id, "state": self.state.value},
                )

    def cancel(self) -> Job:
        """Ask the gateway to cancel the job; updates this object with its answer.

        A pending job is CANCELLED at once; a running one is signalled and reaches
        CANCELLED shortly after (use `wait()`).

        Raises:
            ConflictError: the job has already ended.
            JobgateError: any other error answer, or the gateway is unreachable.
        """
        self._update(self._client.cancel(self.id))
        return self

    def stdout(self, offset: int = 0) -> str:
        """The job's standard output from byte `offset` to its current end.

        Raises:
            JobgateError: an error answer, or the gateway is unreachable.
        """
        return self._client.output(self.id, "stdout", offset=offset)

    def stderr(self, offset: int = 0) -> str:
        """The job's standard error from byte `offset` to its current end.

        Raises:
            JobgateError: an error answer, or the gateway is unreachable.
        """
        return self._client.output(self.id, "stderr", offset=offset)

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        """The job's state changes, oldest first, with `seq` above `after`.

        Raises:
            JobgateError: an error answer, or the gateway is unreachable.
        """
        return self._client.events(self.id, after=after)

    def _update(self, fresh: Job) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(fresh, name))
        self._raw = fresh._raw
