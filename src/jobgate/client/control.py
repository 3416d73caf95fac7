"""The per-job calls of `Client`: verbs, waiting, output and files."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from jobgate.client.http import HttpClient
from jobgate.client.job import Job
from jobgate.client.payload import jsonable
from jobgate.domain.sbatch_names import from_sbatch_names
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import JobgateError

if TYPE_CHECKING:
    from jobgate.client.client import Client

__all__ = ["ControlMixin"]

Stream = Literal["stdout", "stderr"]
DOWNLOAD_CHUNK = 256 * 1024


class ControlMixin(HttpClient):
    """Calls about one job, by id (a `Job` calls these for its own verbs)."""

    def _job(self, data: Any) -> Job:
        try:
            return Job.from_api(self._self(), data)
        except (ValueError, TypeError, KeyError) as exc:
            raise JobgateError(f"unexpected answer from jobgate at {self.url}: "
                               "not a job (is the SDK older than the server?)") from exc

    def _self(self) -> Client:
        from jobgate.client.client import Client

        assert isinstance(self, Client)
        return self

    def _verb(self, job_id: int, verb: str, body: dict[str, Any] | None = None) -> Job:
        return self._job(self._json("POST", f"/v1/jobs/{int(job_id)}/{verb}", json=body))

    def cancel(self, job_id: int) -> Job:
        """Cancel a job; the answer is the job as it is right after the request.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            ConflictError: the job has already ended.
            NotSupportedError: a registry job (no verbs apply).
        """
        return self._verb(job_id, "cancel")

    def hold(self, job_id: int, mode: Literal["user", "admin"] = "user") -> Job:
        """Keep a pending job from starting (JobHeldUser; `admin` needs an admin).

        Raises:
            ConflictError: not pending. PermissionDeniedError: admin mode.
        """
        return self._verb(job_id, "hold", {"mode": mode})

    def release(self, job_id: int) -> Job:
        """Let a held job start.

        Raises:
            ConflictError: not held.
        """
        return self._verb(job_id, "release")

    def suspend(self, job_id: int) -> Job:
        """Stop a running job (SIGSTOP to all its processes).

        Raises:
            ConflictError: not running. NotSupportedError: not on this cluster.
        """
        return self._verb(job_id, "suspend")

    def resume(self, job_id: int) -> Job:
        """Continue a suspended job.

        Raises:
            ConflictError: not suspended.
        """
        return self._verb(job_id, "resume")

    unsuspend = resume

    def requeue(self, job_id: int, *, hold: bool = False) -> Job:
        """Back to PENDING for a fresh run (a running one is stopped first).

        Raises:
            ConflictError: not in a state that can be requeued.
        """
        return self._verb(job_id, "requeue", {"hold": hold})

    def signal(self, job_id: int, signal: str | int) -> Job:
        """Send a signal (a name such as USR1 or SIGUSR1, or a number).

        Raises:
            InvalidSpecError: no such signal. ConflictError: not running.
        """
        return self._verb(job_id, "signal", {"signal": signal})

    send_signal = signal

    def notify(self, job_id: int, message: str) -> Job:
        """Append a message to the job's standard output.

        Raises:
            ConflictError: the job has ended.
        """
        return self._verb(job_id, "notify", {"message": message})

    def modify(self, job_id: int, changes: JobSpec | dict[str, Any] | None = None,
               **fields: Any) -> Job:
        """Change a pending job's spec (any field), or a running one's time_limit,
        name or comment. sbatch's names (time, mem, job_name) work too.

        Raises:
            InvalidSpecError: a bad value or no change given.
            ConflictError: the field cannot change in the job's state.
        """
        body: dict[str, Any] = {}
        if isinstance(changes, JobSpec):
            body.update(changes.model_dump(mode="json", exclude_unset=True))
        elif changes:
            body.update(changes)
        body.update(fields)
        body = {k: jsonable(v) for k, v in from_sbatch_names(body).items()}
        return self._job(self._json("PATCH", f"/v1/jobs/{int(job_id)}", json=body))

    def delete(self, job_id: int, *, force: bool = False) -> None:
        """Delete an ended job and its files (`force`: cancel an active one first).

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            ConflictError: the job is active and `force` is not set.
        """
        self._request("DELETE", f"/v1/jobs/{int(job_id)}",
                      params={"force": "true"} if force else None)

    def script(self, job_id: int) -> str:
        """The batch script the job runs.

        Raises:
            NotSupportedError: a registry job.
        """
        return self._request("GET", f"/v1/jobs/{int(job_id)}/script").text

    def job_stats(self, job_id: int) -> dict[str, Any]:
        """The job's resource usage: run_time, elapsed_cpu_time, cpu_time, max_rss, ...

        Raises:
            NotFoundError: no such job.
        """
        stats: dict[str, Any] = self._json("GET", f"/v1/jobs/{int(job_id)}/stats")
        return stats

    def wait_for(self, job_id: int, timeout: float = 30.0,
                 states: builtins.list[JobState] | None = None) -> Job:
        """The job once it is final (or in one of `states`), or as it is after
        `timeout` seconds (at most 60): one request the gateway holds.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
        """
        params: dict[str, Any] = {"timeout": min(timeout, 60.0)}
        if states:
            params["state"] = [s.value for s in states]
        return self._job(self._json("GET", f"/v1/jobs/{int(job_id)}/wait", params=params,
                                    timeout=timeout + 30))

    def read_output(self, job_id: int, stream: Stream = "stdout", *, offset: int = 0,
                    limit: int | None = None) -> tuple[bytes, int]:
        """One chunk of a job's stdout or stderr from byte `offset`, and where to
        continue. An empty chunk means nothing more has been written yet.

        Raises:
            NotFoundError: no such job. InvalidSpecError: a bad offset or limit.
        """
        params: dict[str, int] = {"offset": offset}
        if limit is not None:
            params["limit"] = limit
        answer = self._request("GET", f"/v1/jobs/{int(job_id)}/{stream}", params=params)
        data = answer.content
        try:
            next_offset = int(answer.headers["X-Next-Offset"])
        except (KeyError, ValueError):
            next_offset = offset + len(data)
        return data, next_offset

    def output_chunks(self, job_id: int, stream: Stream = "stdout", *,
                      offset: int = 0) -> Iterator[bytes]:
        """The output from `offset` to its current end, chunk by chunk.

        Raises:
            NotFoundError: no such job.
        """
        while True:
            data, offset = self.read_output(job_id, stream, offset=offset)
            if not data:
                return
            yield data

    def output(self, job_id: int, stream: Stream = "stdout", *, offset: int = 0) -> str:
        """A job's stdout or stderr from byte `offset` to its current end, as text
        (UTF-8; undecodable bytes are replaced).

        Raises:
            NotFoundError: no such job.
        """
        data = b"".join(self.output_chunks(job_id, stream, offset=offset))
        return data.decode("utf-8", errors="replace")

    def follow_output(self, job_id: int, stream: Stream = "stdout", *,
                      offset: int = 0) -> Iterator[bytes]:
        """The job's output as it is written, until the job has ended and all
        of it has been sent (one streamed request, no polling).

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            UnreachableError: the gateway did not answer.
        """
        params = {"follow": "true", "offset": offset}
        with self._stream(f"/v1/jobs/{int(job_id)}/{stream}", params) as answer:
            yield from answer.iter_bytes()

    def files(self, job_id: int, path: str = "") -> builtins.list[dict[str, Any]]:
        """Entries of the job's working directory (or `path` below it): path,
        type, size, mtime.

        Raises:
            NotFoundError: no such directory. PermissionDeniedError: a link out.
        """
        params = {"path": path} if path else None
        answer = self._json("GET", f"/v1/jobs/{int(job_id)}/files", params=params)
        entries: builtins.list[dict[str, Any]] = answer["files"]
        return entries

    def download(self, job_id: int, path: str, dest: str | Path | None = None) -> Path:
        """Copy one file of the job's working directory to `dest` (a file, or an
        existing directory to put it in; default: the current directory).

        Raises:
            NotFoundError: no such file. PermissionDeniedError: a path leading out.
            OSError: `dest` cannot be written.
        """
        target = Path(dest) if dest is not None else Path.cwd()
        if target.is_dir():
            target = target / Path(path).name
        url = f"/v1/jobs/{int(job_id)}/files/{quote(path.lstrip('/'))}"
        partial = target.with_name(target.name + ".part")
        with self._stream(url, {}) as answer, partial.open("wb") as out:
            for chunk in answer.iter_bytes(DOWNLOAD_CHUNK):
                out.write(chunk)
        partial.replace(target)
        return target
