"""A cap on request bodies, enforced while they stream in (no Content-Length trust)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobgate.api.errors import too_large_response

MAX_BODY_BYTES = 8 * 1024 * 1024


class BodySizeLimit:
    """Answers 413 once a body passes `max_bytes`, whatever the app would have said."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await too_large_response(self.max_bytes)(scope, receive, send)
            return
        received = 0
        too_large = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Cut the body short: the app fails to parse it, and its
                    # answer is replaced by ours below.
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def replacing_send(message: Message) -> None:
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start":
                await too_large_response(self.max_bytes)(scope, receive, send)

        await self.app(scope, counting_receive, replacing_send)
