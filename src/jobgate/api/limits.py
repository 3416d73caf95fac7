"""A cap on request bodies, enforced while they stream in (no Content-Length trust)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobgate.api.errors import too_large_response

MAX_BODY_BYTES = 8 * 1024 * 1024
# A multipart submission may carry upload_max_total_bytes of files, plus its
# spec (up to MAX_BODY_BYTES) and the parts' headers.
PART_HEADER_ROOM = 1024
UPLOAD_PATH = "/v1/jobs"


class BodySizeLimit:
    """Answers 413 once a body passes `max_bytes` (`upload_max_bytes` for a
    multipart submission), whatever the app would have said."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES,
                 upload_max_bytes: int | None = None, upload_max_files: int = 0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes
        self.upload_cap = (None if upload_max_bytes is None else
                           upload_max_bytes + MAX_BODY_BYTES
                           + PART_HEADER_ROOM * (upload_max_files + 2))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        max_bytes, limit = self.max_bytes, None
        if (self.upload_cap is not None and scope["method"] == "POST"
                and scope["path"] == UPLOAD_PATH
                and headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
                == b"multipart/form-data"):
            max_bytes, limit = self.upload_cap, "upload_max_total_bytes"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await too_large_response(max_bytes, limit)(scope, receive, send)
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
                if received > max_bytes:
                    # Cut the body short: the app fails to parse it, and its
                    # answer is replaced by ours below.
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def replacing_send(message: Message) -> None:
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start":
                await too_large_response(max_bytes, limit)(scope, receive, send)

        await self.app(scope, counting_receive, replacing_send)
