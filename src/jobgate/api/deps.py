"""Request dependencies: the gateway of this app and the calling user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from jobgate.errors import AuthenticationError, PermissionDeniedError
from jobgate.service.auth import Principal
from jobgate.service.gateway import Gateway

_bearer = HTTPBearer(auto_error=False, description="The token from $JOBGATE_HOME/admin.token")


# The dependencies are async: a sync one costs each request a hop to the
# thread pool and back, a good part of a small request's time.
async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


@dataclass
class Caller:
    """Who calls, not yet checked: for a route that authenticates on the worker
    thread it runs on anyway (one hop to the thread pool instead of two).

    The request's state keeps the caller (for the error handler and the audit
    log), so the caller keeps no reference to the request: that cycle would
    leave each request, its body parsed, to the garbage collector's next full
    pass instead of freeing it as the answer goes out."""

    token: str | None
    on_behalf_of: str | None
    address: str | None
    principal: Principal | None = None  # once checked

    def cached(self, gateway: Gateway) -> Principal | None:
        """A principal remembered a moment ago (token_cache_seconds), or None."""
        user = gateway.auth.cached(self.token, on_behalf_of=self.on_behalf_of,
                                   address=self.address)
        if user is not None:
            self.principal = user
        return user

    def authenticate(self, gateway: Gateway) -> Principal:
        """Reads the store: call it off the event loop.

        Raises:
            AuthenticationError, RateLimitedError, PermissionDeniedError: as
                AuthService.authenticate.
        """
        user = self.cached(gateway) or gateway.auth.authenticate(
            self.token, on_behalf_of=self.on_behalf_of, address=self.address)
        self.principal = user
        return user


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    on_behalf_of: Annotated[str | None, Header(
        alias="X-On-Behalf-Of", max_length=128,
        description="A service account's token: the user to act for")] = None,
) -> Caller:
    """Raises:
    AuthenticationError: no token at all (known without reading the store).
    """
    if credentials is None:
        raise AuthenticationError("missing bearer token: send 'Authorization: Bearer <token>'")
    caller = Caller(credentials.credentials, on_behalf_of or None,
                    request.client.host if request.client else None)
    # For the audit log, and for a body found invalid before the token is read.
    request.state.caller = caller
    return caller


async def current_user(
    gateway: Annotated[Gateway, Depends(get_gateway)],
    caller: Annotated[Caller, Depends(current_caller)],
) -> Principal:
    user = caller.cached(gateway)
    if user is None:
        user = await run_in_threadpool(caller.authenticate, gateway)
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
CallerDep = Annotated[Caller, Depends(current_caller)]
AdminDep = Annotated[Principal, Depends(admin_user)]
