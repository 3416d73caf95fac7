"""/v1/jobs/{id}/<verb>: steer a job. A verb that does not apply in the job's
state answers 409 with the state in `details`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.error_docs import errors
from jobgate.api.schemas import (
    HoldRequest,
    JobOut,
    NotifyRequest,
    RequeueRequest,
    SignalRequest,
)

# Every verb: not in this state (409), not on this cluster (501), the backend failed (503).
router = APIRouter(prefix="/v1/jobs", tags=["control"], responses=errors(409, 501, 503))


@router.post("/{job_id}/hold", response_model=JobOut, responses=errors(403))
def hold_job(job_id: int, gateway: GatewayDep, user: UserDep,
             body: HoldRequest | None = None) -> JobOut:
    """Keep a pending job from starting; `mode: admin` needs an admin."""
    return JobOut.of(gateway.control.hold(job_id, user, (body or HoldRequest()).mode))


@router.post("/{job_id}/release", response_model=JobOut, responses=errors(403))
def release_job(job_id: int, gateway: GatewayDep, user: UserDep) -> JobOut:
    return JobOut.of(gateway.control.release(job_id, user))


@router.post("/{job_id}/suspend", response_model=JobOut)
def suspend_job(job_id: int, gateway: GatewayDep, user: UserDep) -> JobOut:
    """SIGSTOP to every process of the job; its time limit pauses."""
    return JobOut.of(gateway.control.suspend(job_id, user))


@router.post("/{job_id}/resume", response_model=JobOut)
def resume_job(job_id: int, gateway: GatewayDep, user: UserDep) -> JobOut:
    return JobOut.of(gateway.control.resume(job_id, user))


@router.post("/{job_id}/requeue", response_model=JobOut)
def requeue_job(job_id: int, gateway: GatewayDep, user: UserDep,
                body: RequeueRequest | None = None) -> JobOut:
    """Back to PENDING for a fresh run (a running one is stopped first)."""
    return JobOut.of(gateway.control.requeue(job_id, user,
                                             hold=(body or RequeueRequest()).hold))


@router.post("/{job_id}/signal", response_model=JobOut)
def signal_job(job_id: int, body: SignalRequest, gateway: GatewayDep, user: UserDep) -> JobOut:
    return JobOut.of(gateway.control.send_signal(job_id, user, body.signal))


@router.post("/{job_id}/notify", response_model=JobOut)
def notify_job(job_id: int, body: NotifyRequest, gateway: GatewayDep, user: UserDep) -> JobOut:
    """Append the message to the job's standard output."""
    return JobOut.of(gateway.control.notify(job_id, user, body.message))


@router.patch("/{job_id}", response_model=JobOut)
def modify_job(job_id: int, gateway: GatewayDep, user: UserDep,
               changes: dict[str, Any] = Body(description="JobSpec fields to change")) -> JobOut:
    """Pending: any JobSpec field. Running: time_limit, name, comment."""
    return JobOut.of(gateway.control.modify(job_id, user, changes))
