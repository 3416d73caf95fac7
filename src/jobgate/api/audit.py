"""The audit middleware: every state-changing call, once answered, is one row of
the audit log (who, on behalf of whom, what, the status, when, from where)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobgate.api.deps import Caller
from jobgate.service.audit import WRITES, entry


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            await self.app(scope, receive, send)
            return
        status = 500  # unless an answer starts

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            gateway = getattr(scope["app"].state, "gateway", None)
            if gateway is not None:
                caller = scope.get("state", {}).get("caller")
                principal = caller.principal if isinstance(caller, Caller) else None
                actor = on_behalf_of = None
                if principal is not None:
                    actor = principal.actor or principal.name
                    on_behalf_of = principal.name if principal.actor else None
                query = scope.get("query_string", b"").decode("latin-1")
                client = scope.get("client")
                # Buffered (service/audit.py): no write, no thread hop here.
                gateway.audit.record(entry(
                    datetime.now(UTC), actor, on_behalf_of, scope["method"],
                    scope["path"] + (f"?{query}" if query else ""), status,
                    client[0] if client else None))
