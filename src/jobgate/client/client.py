"""`Client`: the Python SDK over jobgate's REST API (httpx, transport injectable)."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

from jobgate.client.config import DEFAULT_URL, default_token
from jobgate.client.control import ControlMixin
from jobgate.client.job import Job
from jobgate.client.jobs import Jobs
from jobgate.client.payload import spec_body
from jobgate.client.progress import Progress, UploadCounter
from jobgate.client.webhooks import Webhooks
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState

__all__ = ["DEFAULT_URL", "Client", "default_token"]

MAX_PAGE = 1000  # the server's largest page
MAX_BATCH = 1000  # the server's largest batch
DEFAULT_PAGE = 100

Stream = Literal["stdout", "stderr"]
StateFilter = JobState | str | Iterable[JobState | str] | None


class Client(ControlMixin):
    """A connection to one jobgate gateway.

    `url` defaults to `$JOBGATE_URL`, then the `url` of ~/.config/jobgate/config.toml,
    then ``http://127.0.0.1:8000``; `token` to `$JOBGATE_TOKEN`, then the config
    file's `token`, then `$JOBGATE_HOME/admin.token` (home ``./var`` by default).
    Transient failures are tried again `retries` times with backoff (a submit
    under one Idempotency-Key, so never twice). Jobs it returns refresh their
    attributes once older than `update_cache_time` seconds, unless `auto_update`
    is off.

    Use as a context manager, or call `close()`.

    Raises:
        JobgateError: the config file exists but is not valid.
    """

    # -- jobs -----------------------------------------------------------------

    def submit(
        self,
        script: str | None = None,
        *,
        command: str | None = None,
        spec: JobSpec | None = None,
        script_path: str | os.PathLike[str] | None = None,
        idempotency_key: str | None = None,
        files: Iterable[str | os.PathLike[str]] = (),
        archive: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
        **fields: Any,
    ) -> Job:
        """Submit a batch script (its `#SBATCH` lines are read) or a command line.

        `script_path` reads the script from a file; the job is named after the
        file unless an option or `#SBATCH -J` names it. `files` are sent with the
        job and written into its working directory under their base names;
        `archive` (a zip) is unpacked there, before the job starts. `progress`,
        if given, is called as the files are sent with (bytes sent, bytes in all).

        `fields` are JobSpec fields or sbatch's option names (`name`/`job_name`,
        `partition`, `time_limit`/`time`, `memory`/`mem`, `tags`, ...); strings such
        as ``time="1:00:00"`` or ``mem="4G"`` are parsed by the gateway. A field
        given here wins over a directive; `spec` supplies fields too, the other
        arguments win over it.

        Every submit carries an Idempotency-Key (`idempotency_key`, else a fresh
        one), so a retry after a lost answer returns the first job, not a second.

        Raises:
            InvalidSpecError: a field is unknown or has a bad value.
            UnsupportedError: the cluster cannot do what the spec asks.
            TooLargeError: the files pass one of the gateway's upload limits.
            UnauthorizedError: no token, or a wrong one.
            RateLimitedError: too many submits (after the retries).
            UnreachableError: the gateway did not answer.
            OSError: a file to send cannot be read.
        """
        body = spec_body(script, command, spec, script_path, fields)
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
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
            if progress is not None:
                counter = UploadCounter(progress, [handle for _, (_, handle, _) in parts])
                parts = [(field, (name, cast(BinaryIO, counted), kind)) for
                         (field, (name, _, kind)), counted in zip(parts, counter.files,
                                                                  strict=True)]
            return self._job(self._json("POST", "/v1/jobs", data={"spec": json.dumps(body)},
                                        files=parts, headers=headers))

    def submit_many(self, specs: Iterable[JobSpec | dict[str, Any]]) -> builtins.list[Job]:
        """Submit many jobs in few requests (/v1/jobs:batch, 1,000 a request): each
        request's jobs are all accepted, or none (the error names the job by index).

        Raises:
            InvalidSpecError: a spec is bad (``jobs[i].field``).
            RateLimitedError: too many submits (after the retries).
        """
        bodies = [spec_body(None, None, s, None, {}) if isinstance(s, JobSpec)
                  else spec_body(None, None, None, None, dict(s)) for s in specs]
        jobs: builtins.list[Job] = []
        for start in range(0, len(bodies), MAX_BATCH):
            answer = self._json("POST", "/v1/jobs:batch",
                                json={"jobs": bodies[start:start + MAX_BATCH]})
            jobs.extend(self._job(data) for data in answer["jobs"])
        return jobs

    def get(self, job_id: int) -> Job:
        """The job with this id.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            UnauthorizedError: no token, or a wrong one.
            UnreachableError: the gateway did not answer.
        """
        return self._job(self._json("GET", f"/v1/jobs/{int(job_id)}"))

    load = get

    def iter_jobs(
        self,
        *,
        state: StateFilter = None,
        tag: str | None = None,
        user: str | None = None,
        cluster: str | None = None,
        partition: str | None = None,
        account: str | None = None,
        array: int | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE,
    ) -> Iterator[Job]:
        """Jobs matching all the filters, newest first, fetched page by page.

        `user` is an owner's name, `account` the account jobs are charged to,
        `array` an array's job id (its tasks).
        `state` may be one state or several (any of them matches). `limit` caps the
        number of jobs yielded; None follows the cursors to the end.

        Raises:
            InvalidSpecError: an unknown state or a bad limit.
            UnauthorizedError: no token, or a wrong one.
            UnreachableError: the gateway did not answer.
        """
        params = _list_params(state, tag, user, cluster, partition, account, array)
        remaining = limit
        cursor: str | None = None
        while remaining is None or remaining > 0:
            size = min(page_size, MAX_PAGE) if remaining is None else min(remaining, MAX_PAGE)
            page = self._json("GET", "/v1/jobs", params={
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

    def list(
        self,
        *,
        state: StateFilter = None,
        tag: str | None = None,
        user: str | None = None,
        cluster: str | None = None,
        partition: str | None = None,
        account: str | None = None,
        array: int | None = None,
        limit: int | None = None,
    ) -> builtins.list[Job]:
        """Jobs matching all the filters, newest first, up to `limit` in all.

        Raises:
            InvalidSpecError: an unknown state or a bad limit.
            UnauthorizedError: no token, or a wrong one.
            UnreachableError: the gateway did not answer.
        """
        return builtins.list(self.iter_jobs(
            state=state, tag=tag, user=user, cluster=cluster, partition=partition,
            account=account, array=array, limit=limit, page_size=MAX_PAGE,
        ))

    def jobs(self, *, frozen: bool = False, **filters: Any) -> Jobs:
        """Every job matching the filters (as `iter_jobs`), as a `Jobs` collection
        with aggregates (pyslurm's `Jobs.load`).

        Raises:
            InvalidSpecError: an unknown filter value.
        """
        return Jobs.load(self, frozen=frozen, **filters)

    def events(
        self, job_id: int | None = None, *, after: int = 0, wait: float = 0,
        user: str | None = None, state: StateFilter = None, limit: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Events (state changes) with `seq` above `after`, oldest first: of one
        job, or of every job the caller may see. With `wait` (seconds, up to 60),
        the answer comes as soon as there is one.

        Raises:
            NotFoundError: no such job, or not one the caller may see.
            UnreachableError: the gateway did not answer.
        """
        if job_id is not None and not wait and user is None and state is None and \
                limit is None:
            answer = self._json("GET", f"/v1/jobs/{int(job_id)}/events",
                                params={"after": after})
        else:
            params = {**_list_params(state, None, user, None, None), "after": after,
                      "wait": wait}
            if job_id is not None:
                params["job_id"] = int(job_id)
            if limit is not None:
                params["limit"] = limit
            answer = self._json("GET", "/v1/events", params=params, timeout=wait + 30)
        events: builtins.list[dict[str, Any]] = answer["events"]
        return events

    def health(self) -> bool:
        """Whether the gateway answers its liveness check (needs no token).

        Raises:
            UnreachableError: the gateway did not answer.
        """
        return bool(self._json("GET", "/healthz").get("status") == "ok")

    def usage(self, group_by: str = "user", *, since: str | None = None,
              until: str | None = None) -> dict[str, Any]:
        """Accounting (/v1/stats): count, CPUs, memory, CPU time, wall and queue
        time per project, user, cluster, partition, state or day.

        Raises:
            InvalidSpecError: a bad group_by or time.
        """
        params = {"group_by": group_by, "since": since, "until": until}
        answer: dict[str, Any] = self._json(
            "GET", "/v1/stats", params={k: v for k, v in params.items() if v is not None})
        return answer

    def clusters(self) -> builtins.list[dict[str, Any]]:
        """The clusters this gateway fronts, with partitions, verbs and load.

        Raises:
            UnreachableError: the gateway did not answer.
        """
        clusters: builtins.list[dict[str, Any]] = self._json("GET", "/v1/clusters")["clusters"]
        return clusters

    @property
    def webhooks(self) -> Webhooks:
        """Register and inspect webhooks: ``client.webhooks.create(url)``."""
        return Webhooks(self)


def _list_params(state: StateFilter, tag: str | None, user: str | None,
                 cluster: str | None, partition: str | None,
                 account: str | None = None, array: int | None = None) -> dict[str, Any]:
    if isinstance(state, str):
        states: builtins.list[str] = [str(state).upper()]
    else:
        states = [str(s).upper() for s in state or ()]
    given = {"state": states or None, "tag": tag, "user": user, "cluster": cluster,
             "partition": partition, "account": account, "array": array}
    return {key: value for key, value in given.items() if value is not None}
