"""`AsyncClient`: the same calls as `Client`, awaitable (httpx.AsyncClient).

Jobs it returns are `AsyncJob` snapshots: their attributes never fetch (an
attribute read cannot await; ``await job.reload()`` does), and their verbs are
the sync Job's, awaitable: ``await job.cancel()``, ``await job.wait()``.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx

from jobgate.client.async_job import AsyncJob
from jobgate.client.config import load_config
from jobgate.client.errors import UnreachableError, error_from_response
from jobgate.client.http import explain_missing_token, headers_for, translate_transport_error
from jobgate.client.job import Job
from jobgate.client.payload import jsonable, spec_body
from jobgate.client.retry import RetryPolicy
from jobgate.domain.sbatch_names import from_sbatch_names
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import JobgateError

__all__ = ["AsyncClient"]

Stream = Literal["stdout", "stderr"]
StateFilter = JobState | str | Iterable[JobState | str] | None


class AsyncClient:
    """An asyncio connection to one gateway; see `Client` for the settings.

    Raises:
        JobgateError: the config file exists but is not valid.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float | None = None, retries: int | None = None) -> None:
        config = load_config(url, token)
        self.url = config.url
        self.retry = RetryPolicy(retries=config.retries if retries is None else retries)
        self._has_token = bool(config.token)
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers_for(config.token), transport=transport,
            timeout=config.timeout if timeout is None else timeout)

    def __repr__(self) -> str:
        return f"AsyncClient(url={self.url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # -- jobs -----------------------------------------------------------------

    async def submit(self, script: str | None = None, *, command: str | None = None,
                     spec: JobSpec | None = None,
                     script_path: str | os.PathLike[str] | None = None,
                     idempotency_key: str | None = None,
                     files: Iterable[str | os.PathLike[str]] = (),
                     archive: str | os.PathLike[str] | None = None, **fields: Any) -> Job:
        """As `Client.submit`.

        Raises:
            InvalidSpecError, UnsupportedError, TooLargeError, UnauthorizedError,
            RateLimitedError, UnreachableError: as `Client.submit`.
        """
        body = spec_body(script, command, spec, script_path, fields)
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        paths = [Path(p) for p in files]
        if not paths and archive is None:
            return self._job(await self._json("POST", "/v1/jobs", json=body, headers=headers))
        parts: builtins.list[tuple[str, tuple[str, bytes, str]]] = [
            ("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
        if archive is not None:
            parts.append(("archive", (Path(archive).name, Path(archive).read_bytes(),
                                      "application/zip")))
        return self._job(await self._json("POST", "/v1/jobs", data={"spec": json.dumps(body)},
                                          files=parts, headers=headers))

    async def submit_many(self, specs: Iterable[JobSpec | dict[str, Any]]
                          ) -> builtins.list[Job]:
        """As `Client.submit_many`.

        Raises:
            InvalidSpecError: a spec is bad (``jobs[i].field``).
        """
        bodies = [spec_body(None, None, s, None, {}) if isinstance(s, JobSpec)
                  else spec_body(None, None, None, None, dict(s)) for s in specs]
        jobs: builtins.list[Job] = []
        for start in range(0, len(bodies), 1000):
            answer = await self._json("POST", "/v1/jobs:batch",
                                      json={"jobs": bodies[start:start + 1000]})
            jobs.extend(self._job(data) for data in answer["jobs"])
        return jobs

    async def get(self, job_id: int) -> Job:
        """The job with this id.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
        """
        return self._job(await self._json("GET", f"/v1/jobs/{int(job_id)}"))

    load = get

    async def iter_jobs(self, *, state: StateFilter = None, tag: str | None = None,
                        user: str | None = None, cluster: str | None = None,
                        partition: str | None = None, account: str | None = None,
                        array: int | None = None, limit: int | None = None,
                        page_size: int = 100) -> AsyncIterator[Job]:
        """Jobs matching the filters, newest first, page by page.

        Raises:
            InvalidSpecError: an unknown state or a bad limit.
        """
        from jobgate.client.client import _list_params

        params = _list_params(state, tag, user, cluster, partition, account, array)
        remaining = limit
        cursor: str | None = None
        while remaining is None or remaining > 0:
            size = min(page_size, 1000) if remaining is None else min(remaining, 1000)
            page = await self._json("GET", "/v1/jobs", params={
                **params, "limit": max(size, 1), **({"cursor": cursor} if cursor else {})})
            for data in page["jobs"]:
                # A gateway older than the array filter ignores it: never
                # hand back (say, to cancel) a job of another array.
                if array is None or data.get("array_job_id") == array:
                    yield self._job(data)
            if remaining is not None:
                remaining -= len(page["jobs"])
            next_cursor = page.get("next_cursor")
            if not next_cursor or next_cursor == cursor or not page["jobs"]:
                return
            cursor = next_cursor

    async def list(self, *, state: StateFilter = None, tag: str | None = None,
                   user: str | None = None, cluster: str | None = None,
                   partition: str | None = None, account: str | None = None,
                   array: int | None = None, limit: int | None = None) -> builtins.list[Job]:
        """Jobs matching the filters, newest first, up to `limit`.

        Raises:
            InvalidSpecError: an unknown state or a bad limit.
        """
        return [job async for job in self.iter_jobs(
            state=state, tag=tag, user=user, cluster=cluster, partition=partition,
            account=account, array=array, limit=limit, page_size=1000)]

    async def _verb(self, job_id: int, verb: str, body: dict[str, Any] | None = None) -> Job:
        return self._job(await self._json("POST", f"/v1/jobs/{int(job_id)}/{verb}", json=body))

    async def cancel(self, job_id: int) -> Job:
        """Cancel a job. Raises: ConflictError: it has ended."""
        return await self._verb(job_id, "cancel")

    async def hold(self, job_id: int, mode: Literal["user", "admin"] = "user") -> Job:
        """Hold a pending job. Raises: ConflictError: not pending."""
        return await self._verb(job_id, "hold", {"mode": mode})

    async def release(self, job_id: int) -> Job:
        """Release a held job. Raises: ConflictError: not held."""
        return await self._verb(job_id, "release")

    async def suspend(self, job_id: int) -> Job:
        """Suspend a running job. Raises: ConflictError: not running."""
        return await self._verb(job_id, "suspend")

    async def resume(self, job_id: int) -> Job:
        """Resume a suspended job. Raises: ConflictError: not suspended."""
        return await self._verb(job_id, "resume")

    unsuspend = resume

    async def requeue(self, job_id: int, *, hold: bool = False) -> Job:
        """Requeue a job. Raises: ConflictError: not in a state to requeue."""
        return await self._verb(job_id, "requeue", {"hold": hold})

    async def signal(self, job_id: int, signal: str | int) -> Job:
        """Signal a running job. Raises: InvalidSpecError: no such signal."""
        return await self._verb(job_id, "signal", {"signal": signal})

    send_signal = signal

    async def notify(self, job_id: int, message: str) -> Job:
        """Append a message to the job's output. Raises: ConflictError: ended."""
        return await self._verb(job_id, "notify", {"message": message})

    async def modify(self, job_id: int, changes: JobSpec | dict[str, Any] | None = None,
                     **fields: Any) -> Job:
        """As `Client.modify`. Raises: InvalidSpecError, ConflictError."""
        body: dict[str, Any] = {}
        if isinstance(changes, JobSpec):
            body.update(changes.model_dump(mode="json", exclude_unset=True))
        elif changes:
            body.update(changes)
        body.update(fields)
        body = {k: jsonable(v) for k, v in from_sbatch_names(body).items()}
        return self._job(await self._json("PATCH", f"/v1/jobs/{int(job_id)}", json=body))

    async def delete(self, job_id: int, *, force: bool = False) -> None:
        """Delete an ended job. Raises: ConflictError: active without `force`."""
        await self._request("DELETE", f"/v1/jobs/{int(job_id)}",
                            params={"force": "true"} if force else None)

    async def script(self, job_id: int) -> str:
        """The job's batch script. Raises: NotSupportedError: a registry job."""
        return (await self._request("GET", f"/v1/jobs/{int(job_id)}/script")).text

    async def job_stats(self, job_id: int) -> dict[str, Any]:
        """The job's resource usage. Raises: NotFoundError."""
        stats: dict[str, Any] = await self._json("GET", f"/v1/jobs/{int(job_id)}/stats")
        return stats

    async def wait_for(self, job_id: int, timeout: float = 30.0,
                       states: builtins.list[JobState] | None = None) -> Job:
        """The job once final (or in `states`), or after `timeout` s (≤ 60).

        Raises:
            NotFoundError: no such job.
        """
        params: dict[str, Any] = {"timeout": min(timeout, 60.0)}
        if states:
            params["state"] = [s.value for s in states]
        return self._job(await self._json("GET", f"/v1/jobs/{int(job_id)}/wait",
                                          params=params, timeout=timeout + 30))

    async def events(self, job_id: int | None = None, *, after: int = 0, wait: float = 0,
                     user: str | None = None, state: StateFilter = None,
                     limit: int | None = None) -> builtins.list[dict[str, Any]]:
        """As `Client.events`. Raises: NotFoundError: no such job."""
        from jobgate.client.client import _list_params

        params: dict[str, Any] = {**_list_params(state, None, user, None, None),
                                  "after": after, "wait": wait}
        if job_id is not None:
            params["job_id"] = int(job_id)
        if limit is not None:
            params["limit"] = limit
        answer = await self._json("GET", "/v1/events", params=params, timeout=wait + 30)
        events: builtins.list[dict[str, Any]] = answer["events"]
        return events

    async def read_output(self, job_id: int, stream: Stream = "stdout", *, offset: int = 0,
                          limit: int | None = None) -> tuple[bytes, int]:
        """One chunk of output from `offset`, and where to continue.

        Raises:
            NotFoundError: no such job.
        """
        params: dict[str, int] = {"offset": offset}
        if limit is not None:
            params["limit"] = limit
        answer = await self._request("GET", f"/v1/jobs/{int(job_id)}/{stream}", params=params)
        return answer.content, int(answer.headers.get("X-Next-Offset",
                                                      offset + len(answer.content)))

    async def output(self, job_id: int, stream: Stream = "stdout", *, offset: int = 0) -> str:
        """The output from `offset` to its current end, as text. Raises: NotFoundError."""
        chunks: builtins.list[bytes] = []
        while True:
            data, offset = await self.read_output(job_id, stream, offset=offset)
            if not data:
                return b"".join(chunks).decode("utf-8", errors="replace")
            chunks.append(data)

    async def follow_output(self, job_id: int, stream: Stream = "stdout", *,
                            offset: int = 0) -> AsyncIterator[bytes]:
        """The output as it is written, until the job has ended.

        Raises:
            NotFoundError: no such job. UnreachableError: no answer.
        """
        try:
            async with self._http.stream(
                    "GET", f"/v1/jobs/{int(job_id)}/{stream}",
                    params={"follow": "true", "offset": offset},
                    timeout=httpx.Timeout(30.0, read=None)) as answer:
                if answer.is_error:
                    await answer.aread()
                    raise explain_missing_token(error_from_response(answer), self._has_token)
                async for chunk in answer.aiter_bytes():
                    yield chunk
        except httpx.TransportError as exc:
            raise translate_transport_error(self.url, exc) from exc

    async def files(self, job_id: int, path: str = "") -> builtins.list[dict[str, Any]]:
        """Entries of the job's working directory. Raises: NotFoundError."""
        answer = await self._json("GET", f"/v1/jobs/{int(job_id)}/files",
                                  params={"path": path} if path else None)
        entries: builtins.list[dict[str, Any]] = answer["files"]
        return entries

    async def download(self, job_id: int, path: str, dest: str | Path | None = None) -> Path:
        """Copy one file of the working directory to `dest`. Raises: NotFoundError."""
        from urllib.parse import quote

        target = Path(dest) if dest is not None else Path.cwd()
        if target.is_dir():
            target = target / Path(path).name
        answer = await self._request("GET", f"/v1/jobs/{int(job_id)}/files/"
                                            f"{quote(path.lstrip('/'))}")
        target.write_bytes(answer.content)
        return target

    async def usage(self, group_by: str = "user", *, since: str | None = None,
                    until: str | None = None) -> dict[str, Any]:
        """Accounting (/v1/stats). Raises: InvalidSpecError: a bad group_by."""
        params = {"group_by": group_by, "since": since, "until": until}
        answer: dict[str, Any] = await self._json(
            "GET", "/v1/stats", params={k: v for k, v in params.items() if v is not None})
        return answer

    async def clusters(self) -> builtins.list[dict[str, Any]]:
        """The clusters this gateway fronts. Raises: UnreachableError."""
        clusters: builtins.list[dict[str, Any]] = (
            await self._json("GET", "/v1/clusters"))["clusters"]
        return clusters

    async def health(self) -> bool:
        """Whether the gateway answers its liveness check. Raises: UnreachableError."""
        return bool((await self._json("GET", "/healthz")).get("status") == "ok")

    # -- plumbing -------------------------------------------------------------

    def _job(self, data: Any) -> AsyncJob:
        try:
            job = AsyncJob(int(data["id"]), self)
        except (ValueError, TypeError, KeyError) as exc:
            raise JobgateError(f"unexpected answer from jobgate at {self.url}: not a job") \
                from exc
        job._set(data)
        return job

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise JobgateError(f"unexpected answer from {response.request.url}: not JSON") \
                from exc

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        keyed = "Idempotency-Key" in (kwargs.get("headers") or {})
        attempt = 0
        while True:
            try:
                try:
                    response = await self._http.request(method, path, **kwargs)
                except httpx.TransportError as exc:
                    raise translate_transport_error(self.url, exc) from exc
                if response.is_error:
                    raise explain_missing_token(error_from_response(response), self._has_token)
                return response
            except JobgateError as exc:
                cause = exc.__cause__ if isinstance(exc, UnreachableError) and \
                    exc.__cause__ is not None else exc
                if not self.retry.should_retry(attempt, method, keyed, cause):
                    raise
                await asyncio.sleep(self.retry.delay(attempt, exc))
                attempt += 1
