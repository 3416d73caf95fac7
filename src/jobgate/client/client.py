"""`Client`: the Python SDK over jobgate's REST API (httpx, transport injectable)."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal

import httpx

from jobgate.client.errors import UnreachableError, error_from_response
from jobgate.client.job import Job
from jobgate.client.webhooks import Webhooks
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import AuthenticationError, JobgateError

__all__ = ["DEFAULT_URL", "Client", "default_token"]

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_PAGE = 1000  # the server's largest page
DEFAULT_PAGE = 100

Stream = Literal["stdout", "stderr"]


def default_token_path() -> Path:
    """The admin token file of `$JOBGATE_HOME` (default ./var)."""
    return Path(os.environ.get("JOBGATE_HOME") or "var").expanduser().resolve() / "admin.token"


def default_token() -> str | None:
    """`$JOBGATE_TOKEN`, else the admin token file of `$JOBGATE_HOME` (default ./var)."""
    token = os.environ.get("JOBGATE_TOKEN")
    if token:
        return token.strip()
    path = default_token_path()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class Client:
    """A connection to one jobgate gateway.

    `url` defaults to `$JOBGATE_URL`, else ``http://127.0.0.1:8000``; `token` to
    `$JOBGATE_TOKEN`, else the contents of `$JOBGATE_HOME/admin.token` (home
    ``./var`` by default). Without a token (or with ``token=""``) the gateway
    answers every call but `health()` with `AuthenticationError`.

    Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = (url or os.environ.get("JOBGATE_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else default_token()
        headers = {"Accept": "application/json", "User-Agent": "jobgate-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._has_token = bool(token)
        self._http = httpx.Client(
            base_url=self.url, headers=headers, transport=transport, timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        self._http.close()

    # -- jobs -----------------------------------------------------------------

    def submit(
        self,
        script: str | None = None,
        *,
        command: str | None = None,
        spec: JobSpec | None = None,
        idempotency_key: str | None = None,
        files: Iterable[str | os.PathLike[str]] = (),
        archive: str | os.PathLike[str] | None = None,
        **fields: Any,
    ) -> Job:
        """Submit a batch script (its `#SBATCH` lines are read) or a command line.

        `files` are sent with the job and written into its working directory
        under their base names; `archive` (a zip) is unpacked there. They are
        in place before the job starts.

        With `idempotency_key`, sending the same request again (say, after a
        timeout) returns the job the first one made instead of a second job.

        `fields` are JobSpec fields (`name`, `partition`, `time_limit`, `memory`,
        `tags`, ...). Strings such as ``time_limit="1:00:00"`` or ``memory="4G"`` are
        sent as given and parsed by the gateway. Fields left None are not sent, so
        the script's directives fill them; a field given here wins over a directive.
        `spec` supplies fields from a JobSpec; the other arguments win over it.

        Raises:
            InvalidSpecError: a field is unknown or has a bad value.
            UnsupportedError: the cluster cannot do what the spec asks.
            TooLargeError: the files pass one of the gateway's upload limits.
            AuthenticationError: no token, or a wrong one.
            UnreachableError: the gateway did not answer.
            OSError: a file to send cannot be read.
        """
        body: dict[str, Any] = {}
        if spec is not None:
            body.update(spec.model_dump(mode="json", exclude_unset=True))
        given = {"script": script, "command": command, **fields}
        body.update({k: _jsonable(v) for k, v in given.items() if v is not None})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        paths = [Path(p) for p in files]
        if not paths and archive is None:
            return self._job(self._json("POST", "/v1/jobs", json=body, headers=headers))
        with contextlib.ExitStack() as stack:
            parts: builtins.list[tuple[str, tuple[str, BinaryIO, str]]] = [
                ("files", (path.name, stack.enter_context(path.open("rb")),
                           "application/octet-stream")) for path in paths]
            if archive is not None:
                parts.append(("archive", (Path(archive).name,
                                          stack.enter_context(Path(archive).open("rb")),
                                          "application/zip")))
            return self._job(self._json("POST", "/v1/jobs", data={"spec": json.dumps(body)},
                                        files=parts, headers=headers))

    def follow_output(self, job_id: int, stream: Stream = "stdout") -> Iterator[bytes]:
        """The job's output as it is written, until the job has ended and all
        of it has been sent (one streamed request, no polling).

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            UnreachableError: the gateway did not answer.
        """
        path = f"/v1/jobs/{int(job_id)}/{stream}"
        try:
            with self._http.stream("GET", path, params={"follow": "true"},
                                   timeout=httpx.Timeout(30.0, read=None)) as answer:
                if answer.is_error:
                    answer.read()
                    raise error_from_response(answer)
                yield from answer.iter_bytes()
        except httpx.TransportError as exc:
            raise UnreachableError(f"cannot reach jobgate at {self.url}: {exc}") from exc

    def wait_for(self, job_id: int, timeout: float = 30.0) -> Job:
        """The job once it is final, or as it is after `timeout` seconds (≤ 60).

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            UnreachableError: the gateway did not answer.
        """
        return self._job(self._json(
            "GET", f"/v1/jobs/{int(job_id)}/wait", params={"timeout": timeout},
            timeout=timeout + 30,
        ))

    def get(self, job_id: int) -> Job:
        """The job with this id.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            AuthenticationError: no token, or a wrong one.
            UnreachableError: the gateway did not answer.
        """
        return self._job(self._json("GET", f"/v1/jobs/{int(job_id)}"))

    def iter_jobs(
        self,
        *,
        state: JobState | str | Iterable[JobState | str] | None = None,
        tag: str | None = None,
        user: str | None = None,
        cluster: str | None = None,
        partition: str | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE,
    ) -> Iterator[Job]:
        """Jobs matching all the filters, newest first, fetched page by page.

        `state` may be one state or several (any of them matches). `limit` caps the
        number of jobs yielded; None follows the cursors to the end.

        Raises:
            InvalidSpecError: an unknown state or a bad limit.
            AuthenticationError: no token, or a wrong one.
            UnreachableError: the gateway did not answer.
        """
        if isinstance(state, str):
            states: builtins.list[str] = [str(state)]
        else:
            states = [str(s) for s in state or ()]
        params: dict[str, Any] = {
            key: value
            for key, value in {
                "state": states or None, "tag": tag, "user": user,
                "cluster": cluster, "partition": partition,
            }.items()
            if value is not None
        }
        remaining = limit
        cursor: str | None = None
        while remaining is None or remaining > 0:
            size = min(page_size, MAX_PAGE) if remaining is None else min(remaining, MAX_PAGE)
            page = self._json(
                "GET", "/v1/jobs",
                params={**params, "limit": max(size, 1),
                        **({"cursor": cursor} if cursor else {})},
            )
            for data in page["jobs"]:
                yield self._job(data)
            if remaining is not None:
                remaining -= len(page["jobs"])
            next_cursor = page.get("next_cursor")
            if not next_cursor or next_cursor == cursor or not page["jobs"]:
                return
            cursor = next_cursor

    def list(
        self,
        *,
        state: JobState | str | Iterable[JobState | str] | None = None,
        tag: str | None = None,
        user: str | None = None,
        cluster: str | None = None,
        partition: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[Job]:
        """Jobs matching all the filters, newest first, up to `limit` in all.

        Raises:
            InvalidSpecError: an unknown state or a bad limit.
            AuthenticationError: no token, or a wrong one.
            UnreachableError: the gateway did not answer.
        """
        return builtins.list(self.iter_jobs(
            state=state, tag=tag, user=user, cluster=cluster, partition=partition,
            limit=limit, page_size=MAX_PAGE,
        ))

    def cancel(self, job_id: int) -> Job:
        """Cancel a job; the answer is the job as it is right after the request.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            ConflictError: the job has already ended.
            UnreachableError: the gateway did not answer.
        """
        return self._job(self._json("POST", f"/v1/jobs/{int(job_id)}/cancel"))

    def delete(self, job_id: int, *, force: bool = False) -> None:
        """Delete an ended job and its files (`force`: cancel an active one first).

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            ConflictError: the job is active and `force` is not set.
            UnreachableError: the gateway did not answer.
        """
        self._request("DELETE", f"/v1/jobs/{int(job_id)}",
                      params={"force": "true"} if force else None)

    def events(self, job_id: int, *, after: int = 0) -> builtins.list[dict[str, Any]]:
        """The job's events (state changes) with `seq` above `after`, oldest first.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            UnreachableError: the gateway did not answer.
        """
        answer = self._json("GET", f"/v1/jobs/{int(job_id)}/events", params={"after": after})
        events: builtins.list[dict[str, Any]] = answer["events"]
        return events

    def read_output(
        self, job_id: int, stream: Stream = "stdout", *, offset: int = 0,
        limit: int | None = None,
    ) -> tuple[bytes, int]:
        """One chunk of a job's stdout or stderr from byte `offset`, and where to
        continue. An empty chunk means nothing more has been written yet.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            InvalidSpecError: a negative offset or a bad limit.
            UnreachableError: the gateway did not answer.
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

    def output(self, job_id: int, stream: Stream = "stdout", *, offset: int = 0) -> str:
        """A job's stdout or stderr from byte `offset` to its current end, as text
        (UTF-8; undecodable bytes are replaced).

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            UnreachableError: the gateway did not answer.
        """
        chunks: builtins.list[bytes] = []
        while True:
            data, offset = self.read_output(job_id, stream, offset=offset)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def health(self) -> bool:
        """Whether the gateway answers its liveness check (needs no token).

        Raises:
            UnreachableError: the gateway did not answer.
        """
        return bool(self._json("GET", "/healthz").get("status") == "ok")

    @property
    def webhooks(self) -> Webhooks:
        """Register and inspect webhooks: ``client.webhooks.create(url)``."""
        return Webhooks(self)

    # -- plumbing -------------------------------------------------------------

    def _job(self, data: Any) -> Job:
        try:
            return Job.from_api(self, data)
        except ValueError as exc:  # pydantic's ValidationError is one
            raise JobgateError(f"unexpected answer from jobgate at {self.url}: "
                               "not a job (is the SDK older than the server?)") from exc

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise JobgateError(
                f"unexpected answer from {response.request.url}: not JSON"
            ) from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise UnreachableError(
                f"no answer from jobgate at {self.url} in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise UnreachableError(f"cannot reach jobgate at {self.url}: {exc}") from exc
        if response.is_error:
            error = error_from_response(response)
            if isinstance(error, AuthenticationError) and not self._has_token:
                # Say where we looked: the usual cause is a JOBGATE_HOME elsewhere.
                error.message = (
                    f"{error.message}; no token found: pass --token, set JOBGATE_TOKEN, "
                    f"or point JOBGATE_HOME at the gateway's home (no {default_token_path()})"
                )
                error.args = (error.message,)
            raise error
        return response


def _jsonable(value: Any) -> Any:
    """Python values a caller may reasonably pass, in the API's JSON form."""
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return [_jsonable(v) for v in value]
    return value
