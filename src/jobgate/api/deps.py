"""Request dependencies: the gateway of this app and the calling user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway

_bearer = HTTPBearer(auto_error=False, description="The token from $JOBGATE_HOME/admin.token")


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def current_user(
    gateway: Annotated[Gateway, Depends(get_gateway)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return gateway.auth.authenticate(credentials.credentials if credentials else None)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
UserDep = Annotated[Principal, Depends(current_user)]
