"""Request dependencies: the gateway of this app and the calling user."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from jobgate.errors import PermissionDeniedError
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway

_bearer = HTTPBearer(auto_error=False, description="The token from $JOBGATE_HOME/admin.token")


# The dependencies are async: a sync one costs each request a hop to the
# thread pool and back, a good part of a small request's time.
async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def current_user(
    request: Request,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    on_behalf_of: Annotated[str | None, Header(
        alias="X-On-Behalf-Of", max_length=128,
        description="A service account's token: the user to act for")] = None,
) -> Principal:
    token = credentials.credentials if credentials else None
    address = request.client.host if request.client else None
    # A token remembered a moment ago (token_cache_seconds) needs no thread.
    user = gateway.auth.cached(token, on_behalf_of=on_behalf_of or None, address=address)
    if user is None:
        user = await run_in_threadpool(partial(
            gateway.auth.authenticate, token, on_behalf_of=on_behalf_of or None,
            address=address))
    request.state.principal = user  # for the audit log
    return user


async def admin_user(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    """Raises:
    PermissionDeniedError: the caller is not an admin.
    """
    if not user.is_admin:
        raise PermissionDeniedError("this needs an admin token")
    return user


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
UserDep = Annotated[Principal, Depends(current_user)]
AdminDep = Annotated[Principal, Depends(admin_user)]
