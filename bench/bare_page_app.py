"""The floor bench/list_jobs.py measures `GET /v1/jobs` against.

    BARE_PAGE=/tmp/page.json .venv/bin/python -m uvicorn bare_page_app:app \
        --app-dir bench --lifespan off

A plain ASGI app under the same server (uvicorn, its access log on as jobgate's
is) that answers every GET with the bytes of a file: a page jobgate gave, so the
same size. What is left is the HTTP round trip of that many bytes and the
client's JSON parse: no routing, auth, store or encoding.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PAGE = Path(os.environ["BARE_PAGE"]).read_bytes()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(PAGE)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": PAGE})
