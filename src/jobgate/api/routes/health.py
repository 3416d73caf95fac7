"""Liveness: no authentication, no secrets."""

from __future__ import annotations

from fastapi import APIRouter

from jobgate.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")
