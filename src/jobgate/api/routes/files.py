"""/v1/jobs/{id}/files: the job's working directory, listed and downloaded."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.error_docs import errors
from jobgate.api.schemas import FileList
from jobgate.service.jobfiles import MAX_LISTING, Download

router = APIRouter(prefix="/v1/jobs", tags=["files"])

CHUNK = 256 * 1024
_LEADS_OUT: dict[int | str, dict[str, Any]] = {403: {**errors(403)[403], "description":
                    "A symbolic link that leads outside the job's working directory"},
              501: {**errors(501)[501], "description": "A registry job (no files here)"}}


@router.get("/{job_id}/files", response_model=FileList, responses=_LEADS_OUT)
def list_files(
    job_id: int, gateway: GatewayDep, user: UserDep,
    path: Annotated[str, Query(max_length=4096,
                               description="A directory in the working directory")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LISTING)] = MAX_LISTING,
) -> FileList:
    """Everything in the job's working directory (or in `path` below it), all the
    way down, sorted by path; links are listed, not followed. At most `limit`
    entries (`truncated` says when there were more)."""
    entries, truncated = gateway.files.list(job_id, user, path=path, limit=limit)
    return FileList.of(entries, truncated)


@router.get("/{job_id}/files/{path:path}", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, **_LEADS_OUT})
def download_file(job_id: int, path: str, gateway: GatewayDep, user: UserDep
                  ) -> StreamingResponse:
    """One file of the job's working directory. `..`, absolute paths and links
    that lead outside the directory are refused."""
    download = gateway.files.open(job_id, user, path)
    media_type = mimetypes.guess_type(download.name)[0] or "application/octet-stream"
    return StreamingResponse(_chunks(download), media_type=media_type, headers={
        "Content-Length": str(download.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(download.name)}",
    })


def _chunks(download: Download) -> Iterator[bytes]:
    """The file as it was when opened: bytes appended since are not sent (the
    length was announced)."""
    left = download.size
    with download.file as handle:
        while left > 0:
            data = handle.read(min(CHUNK, left))
            if not data:
                break  # truncated meanwhile: the client sees a short body
            left -= len(data)
            yield data
