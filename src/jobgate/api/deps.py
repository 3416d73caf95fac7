"""Request dependencies: the gateway of this app and the calling user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jobgate.errors import PermissionDeniedError
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway

_bearer = HTTPBearer(auto_error=False, description="The token from $JOBGATE_HOME/admin.token")


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def current_user(
    request: Request,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    on_behalf_of: Annotated[str | None, Header(
        alias="X-On-Behalf-Of", max_length=128,
        description="A service account's token: the user to act for")] = None,
) -> Principal:
    user = gateway.auth.authenticate(
        credentials.credentials if credentials else None, on_behalf_of=on_behalf_of or None,
        address=request.client.host if request.client else None)
    request.state.principal = user  # for the audit log
    return user


def admin_user(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    """Raises:
    PermissionDeniedError: the caller is not an admin.
    """
    if not user.is_admin:
        raise PermissionDeniedError("this needs an admin token")
    return user


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
UserDep = Annotated[Principal, Depends(current_user)]
AdminDep = Annotated[Principal, Depends(admin_user)]
