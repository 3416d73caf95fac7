"""/v1/jobs: submit, list, get, cancel, events and output."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from jobgate.api.deps import Caller, CallerDep, GatewayDep, UserDep
from jobgate.api.error_docs import errors
from jobgate.api.job_pages import batch_json, job_list_json
from jobgate.api.routes import uploads
from jobgate.api.schemas import (
    BatchOut,
    BatchRequest,
    EventList,
    EventOut,
    JobList,
    JobOut,
    JobStats,
)
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import NotFoundError
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway
from jobgate.store.jobs import JobFilter

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# Output files are not in the ledger: a followed file is read again this often.
FOLLOW_INTERVAL = 0.2


# The submit routes are async and hand the store's work to one worker thread:
# a sync route would cost a second hop there and back, to check what it returns.
# A single submit authenticates on that thread too (CallerDep): one hop in all.
@router.post("", status_code=201, response_model=JobOut, responses=errors(429),
             openapi_extra=uploads.SUBMIT_DOC)
async def submit_job(
    spec: JobSpec, gateway: GatewayDep, caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(
        description="Send the same key again (within 24 h) to get the first answer "
                    "back instead of a second job")] = None,
) -> Response:
    """Submit a job; answers once it is committed to the ledger. As
    multipart/form-data, a `spec` part (JSON) comes with input files: `files`
    parts and a zip `archive`, placed in the working directory before the job
    can start."""
    return await run_in_threadpool(_submit, spec, gateway, caller, idempotency_key)


def _submit(spec: JobSpec, gateway: Gateway, caller: Caller,
            idempotency_key: str | None) -> Response:
    user = caller.authenticate(gateway)
    gateway.submit_limit.take(user.name)
    with gateway.metrics.submit_seconds.time():
        if idempotency_key is None:
            return created(JobOut.of(gateway.jobs.submit(spec, user)))
        status, body = gateway.idempotent.submit(
            spec, user, idempotency_key, lambda job: JobOut.of(job).model_dump(mode="json"))
    return JSONResponse(body, status_code=status)


@router.post(":batch", status_code=201, response_model=BatchOut, responses=errors(429))
async def submit_batch(body: BatchRequest, gateway: GatewayDep, user: UserDep) -> Response:
    """Submit up to 1,000 jobs in one transaction: all are accepted, or none (the
    error names the job by its index). An array counts as one job here."""
    gateway.submit_limit.take(user.name)
    return await run_in_threadpool(_submit_batch, body, gateway, user)


def _submit_batch(body: BatchRequest, gateway: Gateway, user: Principal) -> Response:
    with gateway.metrics.submit_seconds.time():
        records = gateway.jobs.submit_many(body.specs(), user)
    return created(batch_json(records, datetime.now(UTC)))


def created(answer: BaseModel | bytes) -> Response:
    """201 with `answer` as JSON (a model, or its bytes already written), written
    once: a model returned to FastAPI would be dumped, validated again and dumped
    again (response_model), which for a batch of 1,000 jobs costs more than
    writing them."""
    body = answer if isinstance(answer, bytes) else answer.model_dump_json()
    return Response(body, status_code=201, media_type="application/json")


# The reads most polled are async and authenticate on the worker thread that
# reads the store (CallerDep), as a submit does: one hop there and back, not two.
@router.get("", response_model=JobList)
async def list_jobs(
    gateway: GatewayDep,
    caller: CallerDep,
    state: Annotated[list[JobState] | None, Query()] = None,
    tag: str | None = None,
    user_name: Annotated[str | None, Query(alias="user")] = None,
    cluster: str | None = None,
    partition: str | None = None,
    account: str | None = None,
    array: Annotated[int | None, Query(
        ge=1, description="Only the tasks of this array (their array_job_id)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Response:
    """Jobs newest first; pass `next_cursor` back as `cursor` for the next page."""
    filters = JobFilter(states=tuple(state or ()), tag=tag, user_name=user_name,
                        cluster=cluster, partition=partition, account=account,
                        array_job_id=array)
    return await run_in_threadpool(_list_page, gateway, caller, filters, limit, cursor)


def _list_page(gateway: Gateway, caller: Caller, filters: JobFilter, limit: int,
               cursor: str | None) -> Response:
    user = caller.authenticate(gateway)
    rows, next_cursor = gateway.jobs.list_page(filters, user, limit=limit, cursor=cursor)
    # JobList's JSON, written here (api/job_pages.py): a Response is sent as is.
    return Response(job_list_json(rows, next_cursor, datetime.now(UTC)),
                    media_type="application/json")


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job_id: int, gateway: GatewayDep, caller: CallerDep) -> Response:
    return await run_in_threadpool(_get_job, job_id, gateway, caller)


def _get_job(job_id: int, gateway: Gateway, caller: Caller) -> Response:
    job = gateway.jobs.get(job_id, caller.authenticate(gateway))
    return Response(JobOut.of(job).model_dump_json(), media_type="application/json")


@router.post("/{job_id}/cancel", response_model=JobOut, responses=errors(409, 501, 503))
def cancel_job(job_id: int, gateway: GatewayDep, user: UserDep) -> JobOut:
    """Cancel: a pending job ends at once; a running one is signalled (SIGTERM,
    then SIGKILL after the grace period) and reaches CANCELLED shortly after."""
    return JobOut.of(gateway.jobs.cancel(job_id, user))


@router.get("/{job_id}/events", response_model=EventList)
def job_events(
    job_id: int, gateway: GatewayDep, user: UserDep,
    after: Annotated[int, Query(ge=0, description="Only events with seq above this")] = 0,
) -> EventList:
    events = gateway.jobs.events(job_id, user, after_seq=after)
    return EventList(events=[EventOut.of(event) for event in events])


async def _output(
    stream: Literal["stdout", "stderr"], job_id: int, gateway: GatewayDep, user: UserDep,
    offset: int, limit: int | None, follow: bool,
) -> Response:
    kwargs = {"limit": limit} if limit is not None else {}
    # Read once before answering: an unknown job is a 404, not an empty stream.
    data = await run_in_threadpool(
        gateway.jobs.read_output, job_id, user, stream, offset=offset, **kwargs)
    if not follow:
        return Response(data, media_type="text/plain; charset=utf-8",
                        headers={"X-Next-Offset": str(offset + len(data))})

    async def chunks() -> AsyncIterator[bytes]:
        position = offset + len(data)
        if data:
            yield data
        while True:
            try:
                # Ended first, then read: no byte written before the end is missed.
                ended = (await run_in_threadpool(gateway.jobs.get, job_id, user)).state.final
                more = await run_in_threadpool(
                    gateway.jobs.read_output, job_id, user, stream, offset=position)
            except NotFoundError:
                return  # deleted meanwhile: its output is gone
            if more:
                position += len(more)
                yield more
            elif ended:
                return
            else:
                await asyncio.sleep(FOLLOW_INTERVAL)

    return StreamingResponse(chunks(), media_type="text/plain; charset=utf-8")


_OUTPUT_DOC = ("The bytes of the file from `offset`; `X-Next-Offset` says where to "
               "continue. Empty until the job writes. With `follow=true`, the answer "
               "streams new bytes as they are written, and ends when the job has "
               "ended and all is sent.")


@router.get("/{job_id}/stdout", response_class=Response, description=_OUTPUT_DOC,
            responses=errors(501))
async def job_stdout(
    job_id: int, gateway: GatewayDep, user: UserDep,
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int | None, Query(ge=1)] = None,
    follow: bool = False,
) -> Response:
    return await _output("stdout", job_id, gateway, user, offset, limit, follow)


@router.get("/{job_id}/stderr", response_class=Response, description=_OUTPUT_DOC,
            responses=errors(501))
async def job_stderr(
    job_id: int, gateway: GatewayDep, user: UserDep,
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int | None, Query(ge=1)] = None,
    follow: bool = False,
) -> Response:
    return await _output("stderr", job_id, gateway, user, offset, limit, follow)


@router.get("/{job_id}/script", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}, **errors(501)})
def job_script(job_id: int, gateway: GatewayDep, user: UserDep) -> Response:
    """The batch script the job runs."""
    return Response(gateway.jobs.script(job_id, user), media_type="text/plain; charset=utf-8")


@router.get("/{job_id}/stats", response_model=JobStats)
def job_stats(job_id: int, gateway: GatewayDep, user: UserDep) -> JobStats:
    return JobStats.of(gateway.jobs.get(job_id, user))
