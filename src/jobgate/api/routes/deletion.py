"""DELETE /v1/jobs/{id}: a job leaves every view, and its files are removed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.error_docs import errors

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.delete("/{job_id}", status_code=204, response_class=Response,
               responses=errors(409, 501, 503))
def delete_job(
    job_id: int, gateway: GatewayDep, user: UserDep,
    force: Annotated[bool, Query(description="Cancel an active job first")] = False,
) -> Response:
    """Delete an ended job: it answers 404 from then on and its run and default
    working directories are removed (a working directory you chose is left
    alone). An active job is a 409 unless `force=true`, which cancels it; its
    files go once it has ended. The ledger keeps the row and its events, ending
    with a `deleted` event, and the id is never given to another job."""
    gateway.deletion.delete(job_id, user, force=force)
    return Response(status_code=204)
