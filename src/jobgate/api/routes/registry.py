"""/v1/registry/jobs: records of jobs that schedulers outside jobgate run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.error_docs import errors
from jobgate.api.schemas import RegistryAnswer, RegistryResult

router = APIRouter(prefix="/v1/registry", tags=["registry"])

_RECORDS_DOC = (
    "Job records, each an object with: `cluster_id`, `user` (required); `job_id` "
    "and/or `group_id` + `group_index` (which job); `job_name`, `project_oid`, "
    "`compute_project_id` (the account), `partition`, `nodes` (names, a host list or "
    "a count), `allocated_resources` (TRES: `['cpu=64', 'mem=256G', 'gres/gpu=4']`), "
    "`working_directory`, `submitted`, `start`, `end` (ISO 8601; UTC when no offset), "
    "`time_limit` (seconds, or a Slurm time string), `state` (a Slurm state; null: "
    "UNKNOWN), `priority_id`, `reservation`, `reason`, `exit_code` (0-255, or Slurm's "
    "`'code:signal'`), `cluster_cockpit_id`, "
    "`additional_data` (an object). A record that is not valid is rejected alone.")


@router.post("/jobs", response_model=RegistryAnswer, responses=errors(403, 409))
def push_registry_jobs(
    gateway: GatewayDep, user: UserDep,
    records: Annotated[list[Any], Body(min_length=1, description=_RECORDS_DOC)],
) -> RegistryAnswer:
    """Upsert jobs run by outside schedulers. A record that names a registry job
    by (`cluster_id`, `job_id`) or (`cluster_id`, `group_id`, `group_index`)
    overwrites it; otherwise a new job is made. Each change is an event. The
    answer says, per record and in order, whether it was created, updated,
    unchanged or rejected (and why). Up to `registry_max_batch` records (1,000 by
    default; more: 413); the `ingest` role (or an admin) is needed (403)."""
    outcomes = gateway.registry.ingest(records, user)
    counts = {status: 0 for status in ("created", "updated", "unchanged", "rejected")}
    results = []
    for outcome in outcomes:
        counts[outcome.status] += 1
        results.append(RegistryResult(index=outcome.position, status=outcome.status,
                                      id=outcome.job_id, field=outcome.field,
                                      reason=outcome.reason))
    return RegistryAnswer(**counts, results=results)
