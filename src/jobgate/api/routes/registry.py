"""/v1/registry/jobs: records of jobs that schedulers outside jobgate run.

A batch is up to a thousand records: its body is parsed by pydantic-core's JSON
parser and its answer written by orjson, each a few times faster than the
standard library's json and FastAPI's response model (which would validate a
thousand results again); the OpenAPI document still describes both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.error_docs import errors
from jobgate.api.schemas import RegistryAnswer


class _FastJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


def parse_json(body: bytes) -> Any:
    """The body as the standard library's json reads it (integers of any size,
    NaN), only faster; what pydantic-core refuses (lone surrogates, UTF-16) goes
    to json itself, which accepts it or raises the same error as before. (Not
    orjson: it reads an integer beyond 64 bits as a float, changing the record.)"""
    try:
        return from_json(body)
    except ValueError:
        return json.loads(body)


class _FastJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def fast_json_handler(request: Request) -> Response:
            return await handler(_FastJsonRequest(request.scope, request.receive))

        return fast_json_handler


router = APIRouter(prefix="/v1/registry", tags=["registry"], route_class=_FastJsonRoute)

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
) -> Response:
    """Upsert jobs run by outside schedulers. A record that names a registry job
    by (`cluster_id`, `job_id`) or (`cluster_id`, `group_id`, `group_index`)
    overwrites it; otherwise a new job is made. Each change is an event. The
    answer says, per record and in order, whether it was created, updated,
    unchanged or rejected (and why). Up to `registry_max_batch` records (1,000 by
    default; more: 413); the `ingest` role (or an admin) is needed (403)."""
    outcomes = gateway.registry.ingest(records, user)
    answer: dict[str, Any] = {
        status: 0 for status in ("created", "updated", "unchanged", "rejected")}
    for outcome in outcomes:
        answer[outcome.status] += 1
    # RegistryAnswer, field for field (tests/api/test_registry_api.py checks it).
    answer["results"] = [
        {"index": outcome.position, "status": outcome.status, "id": outcome.job_id,
         "field": outcome.field, "reason": outcome.reason} for outcome in outcomes]
    return Response(orjson.dumps(answer), media_type="application/json")
