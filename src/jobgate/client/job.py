"""`Job`: one job, its attributes named as pyslurm's Job, with the verbs that act on it.

Times are aware UTC datetimes, durations seconds, memory MiB (the API's units).

The attributes are cached: with `auto_update` (the default) an attribute read
once the cache is older than `update_cache_time` seconds (default 5) fetches the
job again; with it off, or on a `frozen` job, attributes keep their value until
`update(flushcache=True)`.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from jobgate.client.errors import WaitTimeout
from jobgate.domain.states import JobState

if TYPE_CHECKING:
    from jobgate.client.client import Client
    from jobgate.domain.spec import JobSpec

__all__ = ["Job"]

T = TypeVar("T")
# The longest one wait request asks the gateway to hold (it allows 60 s).
WAIT_SLICE = 55.0


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


class _Field(Generic[T]):
    """A cached attribute of the job (refreshed on read when the cache expired)."""

    def __init__(self, convert: Callable[[Any], T], doc: str, key: str | None = None) -> None:
        self.convert = convert
        self.key = key
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = self.key or name

    @overload
    def __get__(self, job: None, owner: type) -> _Field[T]: ...
    @overload
    def __get__(self, job: Job, owner: type) -> T: ...
    def __get__(self, job: Job | None, owner: type) -> T | _Field[T]:
        if job is None:
            return self
        assert self.key is not None
        return self.convert(job._get(self.key))


class Job:
    """A job of a jobgate gateway, as pyslurm's `Job` is a job of Slurm.

    `Job(42)` names a job without fetching it (the first attribute read does);
    `Job.load(42)` fetches it now. Without `client`, the default client from the
    environment is used (`$JOBGATE_URL`, `$JOBGATE_TOKEN`, ~/.config/jobgate/config.toml).
    """

    name = _Field(str, "The job's name.")
    state = _Field(JobState, "The state (JobState, Slurm's names).")
    state_reason = _Field(_opt_str, "Why it is in that state (Slurm's reasons).")
    held = _Field(bool, "True while held (PENDING with reason JobHeldUser/Admin).")
    user_name = _Field(str, "Who owns the job.")
    account = _Field(_opt_str, "The account (project) charged.")
    project = _Field(_opt_str, "The gateway project the job belongs to, or None.")
    cluster = _Field(str, "The cluster that runs it.")
    partition = _Field(str, "The partition.")
    num_nodes = _Field(int, "Nodes asked for.")
    ntasks = _Field(int, "Tasks asked for.")
    cpus_per_task = _Field(int, "CPUs per task.")
    cpus = _Field(int, "CPUs in all (ntasks x cpus_per_task).")
    memory = _Field(_opt_int, "Memory per node, MiB (None: not asked).")
    memory_per_cpu = _Field(_opt_int, "Memory per CPU, MiB (None: not asked).")
    gpus = _Field(int, "GPUs asked for.")
    time_limit = _Field(_opt_int, "Time limit, seconds (None: unlimited).")
    priority = _Field(int, "Scheduling priority.")
    tags = _Field(list, "The job's tags (list of str).")
    comment = _Field(_opt_str, "The job's comment.")
    dependencies = _Field(_opt_str, "Slurm's dependency string (afterok:12,...), if any.")
    qos = _Field(_opt_str, "The quality of service asked (Slurm's), if any.")
    working_directory = _Field(str, "Where the job runs.")
    standard_output = _Field(str, "Path of its standard output file.")
    standard_error = _Field(str, "Path of its standard error file.")
    submit_time = _Field(_time, "When it was submitted (UTC datetime).")
    start_time = _Field(_time, "When it started (UTC datetime), or None.")
    end_time = _Field(_time, "When it ended (UTC datetime), or None.")
    exit_code = _Field(_opt_int, "Its exit code once ended.")
    exit_code_signal = _Field(_opt_int, "The signal that ended it, if one did.")
    requeue_count = _Field(int, "How many times it was requeued.")
    array_id = _Field(_opt_int, "The array's job id, for a task of an array.", "array_job_id")
    array_task_id = _Field(_opt_int, "The task index, for a task of an array.")
    elapsed_cpu_time = _Field(int, "run_time x cpus, CPU-seconds.")
    cpu_time = _Field(lambda v: None if v is None else float(v),
                      "User + system CPU seconds used, once known.")
    max_rss = _Field(_opt_int, "Peak resident memory, KiB, once known.")
    allocation = _Field(lambda v: v, "Resources given: node, CPU ids, memory, GPU ids.")
    source = _Field(str, "gateway (submitted here) or registry (pushed from outside).")

    def __init__(self, job_id: int, *, client: Client | None = None,
                 auto_update: bool | None = None, update_cache_time: float | None = None,
                 frozen: bool = False) -> None:
        self.id = int(job_id)
        self._client = client
        self._data: dict[str, Any] | None = None
        self._fetched = 0.0
        self.auto_update = (client.auto_update if client is not None else True) \
            if auto_update is None else auto_update
        self.update_cache_time = (client.update_cache_time if client is not None else 5.0) \
            if update_cache_time is None else update_cache_time
        self.frozen = frozen
        self.stats: dict[str, Any] | None = None

    @classmethod
    def from_api(cls, client: Client, data: dict[str, Any]) -> Job:
        """A job built from the API's JSON, bound to the client that fetched it.

        Raises:
            KeyError, ValueError: the answer is not a job.
        """
        job = cls(int(data["id"]), client=client)
        job._set(data)
        return job

    @classmethod
    def load(cls, job_id: int, client: Client | None = None) -> Job:
        """Fetch the job now (pyslurm's `Job.load`).

        Raises:
            NotFoundError (MissingJobError): no such job, or not one you may see.
            UnauthorizedError: no token, or a wrong one.
            UnreachableError: the gateway did not answer.
        """
        return (client or _default_client()).get(job_id)

    # -- the cache --------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The client this job talks through (the default one if none was given)."""
        if self._client is None:
            self._client = _default_client()
        return self._client

    def update(self, flushcache: bool = False) -> Job:
        """Fetch the job again if the cache expired, or always with `flushcache`.

        Raises:
            NotFoundError: the job is gone or no longer visible.
            JobgateError: any other error answer, or the gateway is unreachable.
        """
        if flushcache or self._data is None or self._expired():
            self._set(self.client.get(self.id).to_dict())
        return self

    def reload(self) -> Job:
        """Fetch the job again now (`update(flushcache=True)`).

        Raises:
            NotFoundError: the job is gone or no longer visible.
        """
        return self.update(flushcache=True)

    refresh = reload

    def _expired(self) -> bool:
        return time.monotonic() - self._fetched >= self.update_cache_time

    def _get(self, key: str) -> Any:
        if self._data is None or (self.auto_update and not self.frozen and self._expired()):
            self.update(flushcache=True)
        assert self._data is not None
        return self._data.get(key)

    def _set(self, data: dict[str, Any]) -> None:
        self._data = dict(data)
        self._fetched = time.monotonic()

    def _apply(self, fresh: Job) -> Job:
        self._set(fresh.to_dict())
        return self

    # -- derived attributes -------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the job is in a final state."""
        return self.state.final

    @property
    def run_time(self) -> int:
        """Seconds it has run (up to now while it runs)."""
        seconds = int(self._get("run_time") or 0)
        if self._data is not None and self._data.get("state") == JobState.RUNNING.value:
            seconds += int(time.monotonic() - self._fetched)
        return seconds

    @property
    def run_time_remaining(self) -> int | None:
        """Seconds left before the time limit (None: no limit)."""
        limit = self.time_limit
        return None if limit is None else max(0, limit - self.run_time)

    def to_dict(self) -> dict[str, Any]:
        """The job as the API sent it last (JSON types, every field).

        Raises:
            JobgateError: the job was never fetched and cannot be.
        """
        if self._data is None:
            self.update(flushcache=True)
        return dict(self._data or {})

    def __repr__(self) -> str:
        if self._data is None:
            return f"Job(id={self.id})"
        return f"Job(id={self.id}, name={self._data.get('name')!r}, " \
               f"state={self._data.get('state')})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- verbs --------------------------------------------------------------------

    def cancel(self) -> Job:
        """Cancel: a pending job ends at once, a running one is signalled.

        Raises:
            ConflictError: the job has already ended.
        """
        return self._apply(self.client.cancel(self.id))

    def hold(self, mode: Literal["user", "admin"] | None = None) -> Job:
        """Keep a pending job from starting (`mode="admin"` needs an admin).

        Raises:
            ConflictError: the job is not pending. PermissionDeniedError: admin mode.
        """
        return self._apply(self.client.hold(self.id, mode or "user"))

    def release(self) -> Job:
        """Release a held job.

        Raises:
            ConflictError: the job is not held.
        """
        return self._apply(self.client.release(self.id))

    def suspend(self) -> Job:
        """Stop a running job (SIGSTOP); its time limit pauses.

        Raises:
            ConflictError: not running. NotSupportedError: not on this cluster.
        """
        return self._apply(self.client.suspend(self.id))

    def unsuspend(self) -> Job:
        """Resume a suspended job.

        Raises:
            ConflictError: not suspended.
        """
        return self._apply(self.client.resume(self.id))

    resume = unsuspend

    def requeue(self, hold: bool = False) -> Job:
        """Back to PENDING for a fresh run (held, with `hold`).

        Raises:
            ConflictError: the job cannot be requeued in its state.
        """
        return self._apply(self.client.requeue(self.id, hold=hold))

    def send_signal(self, signal: str | int) -> Job:
        """Send a signal (USR1, SIGUSR1 or a number) to every process of the job.

        Raises:
            InvalidSpecError: no such signal. ConflictError: not running.
        """
        return self._apply(self.client.signal(self.id, signal))

    def notify(self, msg: str) -> Job:
        """Append a message to the job's standard output.

        Raises:
            ConflictError: the job has ended.
        """
        return self._apply(self.client.notify(self.id, msg))

    def modify(self, changes: JobSpec | dict[str, Any] | None = None, **fields: Any) -> Job:
        """Change a pending job's spec, or a running job's time_limit, name or comment
        (sbatch names such as ``time="2:00:00"`` work too).

        Raises:
            InvalidSpecError: a bad value. ConflictError: the field cannot change now.
        """
        return self._apply(self.client.modify(self.id, changes, **fields))

    def delete(self, force_abort: bool = False) -> None:
        """Delete an ended job and its files; `force_abort` cancels an active one first.

        Raises:
            ConflictError: the job is active and `force_abort` is not set.
        """
        self.client.delete(self.id, force=force_abort)

    def get_batch_script(self) -> str:
        """The batch script the job runs.

        Raises:
            NotSupportedError: a registry job (its script is not here).
        """
        return self.client.script(self.id)

    def load_stats(self) -> dict[str, Any]:
        """Resource usage (run_time, cpu_time, max_rss, ...); also kept in `stats`.

        Raises:
            NotFoundError: the job is gone.
        """
        self.stats = self.client.job_stats(self.id)
        return self.stats

    def get_resource_layout_per_node(self) -> dict[str, dict[str, Any]]:
        """{node: {"cpu_ids": [...], "memory": MiB, "gpu_ids": [...]}} of a started
        job; empty before it has resources."""
        allocation = self.allocation
        if not isinstance(allocation, dict) or not allocation:
            return {}
        if isinstance(allocation.get("nodes"), dict):
            return dict(allocation["nodes"])
        node = str(allocation.get("node") or "localhost")
        return {node: {"cpu_ids": list(allocation.get("cpus", [])),
                       "memory": allocation.get("memory"),
                       "gpu_ids": list(allocation.get("gpus", []))}}

    def wait(self, until: JobState | str | Iterable[JobState | str] | None = None,
             timeout: float | None = None) -> JobState:
        """Wait until the job is final (or in one of `until`) and return its state.

        The gateway answers as soon as the state is reached (its wait endpoint),
        so this neither polls nor lags.

        Raises:
            WaitTimeout: not there after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        targets = _states(until)
        while True:
            left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            self._apply(self.client.wait_for(self.id, timeout=max(0.0, min(left, WAIT_SLICE)),
                                             states=targets))
            state = self.state
            if state.final or state in targets:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"job {self.id} is still {state.value} after {timeout:g} s",
                    details={"job_id": self.id, "state": state.value},
                )

    def stdout(self, follow: bool = False, *, offset: int = 0) -> Iterator[str]:
        """The standard output as lines of text (each ending in a newline, but
        maybe the last). With `follow`, lines come as the job writes them until
        it has ended.

        Raises:
            NotFoundError: the job is gone.
        """
        return self._lines("stdout", follow, offset)

    def stderr(self, follow: bool = False, *, offset: int = 0) -> Iterator[str]:
        """The standard error as lines of text; see `stdout`.

        Raises:
            NotFoundError: the job is gone.
        """
        return self._lines("stderr", follow, offset)

    def read_stdout(self, offset: int = 0) -> str:
        """All of the standard output written so far, from byte `offset`."""
        return self.client.output(self.id, "stdout", offset=offset)

    def read_stderr(self, offset: int = 0) -> str:
        """All of the standard error written so far, from byte `offset`."""
        return self.client.output(self.id, "stderr", offset=offset)

    def _lines(self, stream: Literal["stdout", "stderr"], follow: bool,
               offset: int) -> Iterator[str]:
        chunks: Iterable[bytes]
        if follow:
            chunks = self.client.follow_output(self.id, stream, offset=offset)
        else:
            chunks = self.client.output_chunks(self.id, stream, offset=offset)
        yield from text_lines(chunks)

    def files(self, path: str = "") -> list[dict[str, Any]]:
        """The files of the job's working directory (or of `path` below it).

        Raises:
            NotFoundError: no such directory. PermissionDeniedError: a link out.
        """
        return self.client.files(self.id, path)

    def download(self, path: str, dest: str | Path | None = None) -> Path:
        """Copy one file of the working directory to `dest` (a file or a directory;
        default: the current directory); returns where it was written.

        Raises:
            NotFoundError: no such file. PermissionDeniedError: a path leading out.
        """
        return self.client.download(self.id, path, dest)

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        """The job's state changes, oldest first, with `seq` above `after`."""
        return self.client.events(self.id, after=after)


def text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 chunks as lines (multi-byte characters split across chunks survive)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line + "\n"
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def _states(until: JobState | str | Iterable[JobState | str] | None) -> list[JobState]:
    if until is None:
        return []
    if isinstance(until, (str, JobState)):
        return [JobState(str(until).upper())]
    return [JobState(str(s).upper()) for s in until]


def _default_client() -> Client:
    """The client `Job.load` and `Jobs.load` use when given none. Nobody closes
    it, so it keeps no connection open between requests."""
    import httpx

    from jobgate.client.client import Client

    return Client(limits=httpx.Limits(max_keepalive_connections=0))
