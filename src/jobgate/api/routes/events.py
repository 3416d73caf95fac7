"""Push instead of polling storms: long-poll and SSE over the event log, and
waiting for one job to reach a state."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.schemas import EventList, EventOut, JobOut
from jobgate.domain.states import JobState
from jobgate.service.events import RECHECK_SECONDS

router = APIRouter(tags=["events"])

MAX_WAIT = 60.0
KEEPALIVE = 15.0


@router.get("/v1/events", response_model=EventList)
async def long_poll(
    gateway: GatewayDep, user: UserDep,
    after: Annotated[int, Query(ge=0, description="Only events with seq above this")] = 0,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT, description="Seconds to wait for one")] = 0,
    job_id: int | None = None,
    user_name: Annotated[str | None, Query(alias="user")] = None,
    state: Annotated[list[JobState] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> EventList:
    """Events after `after`, oldest first; with `wait`, answers as soon as there
    is one (or empty when the wait runs out). Continue from the last `seq`."""
    deadline = time.monotonic() + wait
    while True:
        async with gateway.bus.listen() as ticket:
            events = await run_in_threadpool(
                gateway.jobs.events_since, user, after, limit=limit, job_id=job_id,
                user_name=user_name, states=state or ())
            left = deadline - time.monotonic()
            if events or left <= 0:
                return EventList(events=[EventOut.of(e) for e in events])
            await ticket.wait(min(left, RECHECK_SECONDS))


@router.get("/v1/events/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream(
    request: Request, gateway: GatewayDep, user: UserDep,
    after: Annotated[int, Query(ge=0)] = 0,
    job_id: int | None = None,
    user_name: Annotated[str | None, Query(alias="user")] = None,
    state: Annotated[list[JobState] | None, Query()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events, one per ledger event (`id` is its seq). A client that
    reconnects with `Last-Event-ID` misses nothing."""
    if last_event_id is not None and last_event_id.isdigit():
        after = max(after, int(last_event_id))

    async def events() -> AsyncIterator[str]:
        seen = after
        quiet_since = time.monotonic()
        while not await request.is_disconnected():
            async with gateway.bus.listen() as ticket:
                batch = await run_in_threadpool(
                    gateway.jobs.events_since, user, seen, limit=500, job_id=job_id,
                    user_name=user_name, states=state or ())
                for event in batch:
                    body = EventOut.of(event).model_dump_json()
                    yield f"id: {event.seq}\nevent: job\ndata: {body}\n\n"
                    seen = event.seq
                if batch:
                    quiet_since = time.monotonic()
                    continue
                if time.monotonic() - quiet_since >= KEEPALIVE:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
                await ticket.wait(RECHECK_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/v1/jobs/{job_id}/wait", response_model=JobOut)
async def wait_for_job(
    job_id: int, gateway: GatewayDep, user: UserDep,
    state: Annotated[list[JobState] | None, Query(description="Also stop at these")] = None,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 30,
) -> JobOut:
    """The job as soon as it is in one of `state` or in a final state, or as it
    is when `timeout` runs out (check `state` in the answer)."""
    targets = set(state or ())
    deadline = time.monotonic() + timeout
    while True:
        async with gateway.bus.listen() as ticket:
            job = await run_in_threadpool(gateway.jobs.get, job_id, user)
            left = deadline - time.monotonic()
            if job.state.final or job.state in targets or left <= 0:
                return JobOut.of(job)
            await ticket.wait(min(left, RECHECK_SECONDS))



