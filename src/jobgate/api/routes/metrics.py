"""/metrics for Prometheus (an admin's bearer token: counts span every user)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.error_docs import errors
from jobgate.errors import PermissionDeniedError

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}, **errors(403)})
def metrics(gateway: GatewayDep, user: UserDep) -> Response:
    if not user.is_admin:
        raise PermissionDeniedError("metrics are for admins")
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)
