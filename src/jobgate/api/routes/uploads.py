"""POST /v1/jobs as multipart/form-data: a job with its input files.

Parts: `spec` (the JobSpec as JSON), any number of `files` (each written under
its filename, which may hold directories: `data/in.csv`) and at most one
`archive` (a zip, unpacked). The body is read as it streams in, straight into
the staging area, where the limits stop it early; the job is only written,
with its files in place, once everything has arrived and passed.

The route shares its path with the JSON submission: `MultipartRoute` matches
only multipart bodies, so it is mounted before the JSON route.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import Scope

from jobgate.api.deps import GatewayDep, UserDep
from jobgate.api.limits import MAX_BODY_BYTES
from jobgate.api.schemas import JobOut
from jobgate.domain.spec import JobSpec
from jobgate.errors import InvalidSpecError, TooLargeError
from jobgate.service.uploads import StagedArchive, StagedFile, Staging

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MULTIPART = b"multipart/form-data"

# What the JSON route's OpenAPI entry adds for this one (which is not listed).
SUBMIT_DOC: dict[str, Any] = {
    "requestBody": {"content": {"multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {"type": "string", "description": "The JobSpec, as JSON"},
                "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "Input files, each written under its filename "
                                         "into the job's working directory"},
                "archive": {"type": "string", "format": "binary",
                            "description": "A zip archive, unpacked into the working "
                                           "directory"},
            },
        },
    }}},
    "responses": {"413": {"description": "Past a limit (named in `details.limit`): "
                                         "upload_max_total_bytes, upload_max_files, "
                                         "upload_max_file_bytes"}},
}


def is_multipart(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == MULTIPART)
    return False


class MultipartRoute(APIRoute):
    """A route that only takes multipart/form-data bodies."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and not is_multipart(scope):
            return Match.NONE, {}
        return match, child


router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=MultipartRoute)


@router.post("", status_code=201, response_model=JobOut, include_in_schema=False)
async def submit_with_files(
    request: Request, gateway: GatewayDep, user: UserDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    gateway.submit_limit.take(user.name)
    staging = await run_in_threadpool(gateway.uploads.staging)
    form: MultipartForm | None = None
    try:
        form = MultipartForm(staging, request.headers.get("content-type", ""))
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(form.write, chunk)
        spec = form.finish()
        with gateway.metrics.submit_seconds.time():
            status, body = await run_in_threadpool(
                gateway.uploads.submit, spec, user, staging,
                lambda job: JobOut.of(job).model_dump(mode="json"), idempotency_key)
    finally:
        if form is not None:
            form.close()
        await run_in_threadpool(staging.discard)
    return JSONResponse(body, status_code=status)


class MultipartForm:
    """Feeds a multipart body into a Staging as it arrives."""

    def __init__(self, staging: Staging, content_type: str) -> None:
        kind, options = parse_options_header(content_type)
        if kind != MULTIPART or not options.get(b"boundary"):
            raise InvalidSpecError("Content-Type", content_type,
                                   "must be multipart/form-data with a boundary")
        self.staging = staging
        self.spec: bytearray | None = None
        self._sink: bytearray | StagedFile | StagedArchive | None = None
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._ended = False
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._headers.clear,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }
        self.parser = MultipartParser(options[b"boundary"], callbacks)

    def write(self, chunk: bytes) -> None:
        """Raises:
        InvalidSpecError: not multipart, or a part that is refused (named).
        TooLargeError: past an upload limit.
        """
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise InvalidSpecError("body", None, f"not valid multipart/form-data ({exc})"
                                   ) from exc

    def finish(self) -> JobSpec:
        """The spec, once the whole body has been read.

        Raises:
            InvalidSpecError: no spec part, or one that is not a JobSpec in JSON.
        """
        try:
            self.parser.finalize()
        except FormParserError as exc:
            raise InvalidSpecError("body", None, f"not valid multipart/form-data ({exc})"
                                   ) from exc
        if not self._ended:  # the parser does not check: a cut body would pass
            raise InvalidSpecError("body", None, "cut short: the closing boundary never came")
        if self.spec is None:
            raise InvalidSpecError("spec", None, "missing: send the JobSpec as JSON in a "
                                   "part named spec")
        try:
            data = json.loads(self.spec)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidSpecError("spec", bytes(self.spec[:40]).decode(errors="replace"),
                                   f"not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidSpecError("spec", type(data).__name__, "must be a JSON object")
        return JobSpec.parse(data)

    def close(self) -> None:
        if isinstance(self._sink, (StagedFile, StagedArchive)):
            self._sink.close()
        self._sink = None

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = _text(options.get(b"name"), "part name")
        filename = options.get(b"filename")
        if name == "spec":
            if self.spec is not None:
                raise InvalidSpecError("spec", None, "sent twice")
            self.spec = self._sink = bytearray()
        elif name == "files":
            if not filename:
                raise InvalidSpecError("files", None, "a file part needs a filename")
            self._sink = self.staging.new_file(_text(filename, "filename"), "files")
        elif name == "archive":
            self._sink = self.staging.new_archive(_text(filename or b"archive", "filename"))
        else:
            raise InvalidSpecError("body", name, "an unknown part; send spec, files and "
                                   "archive")

    def _data(self, data: bytes, start: int, end: int) -> None:
        sink = self._sink
        if isinstance(sink, bytearray):
            if len(sink) + end - start > MAX_BODY_BYTES:
                raise TooLargeError("the request body limit", MAX_BODY_BYTES, "spec")
            sink.extend(data[start:end])
        elif sink is not None:
            sink.write(data[start:end])

    def _part_end(self) -> None:
        self.close()

    def _end(self) -> None:
        self._ended = True


def _text(value: bytes | None, what: str) -> str:
    """Raises:
    InvalidSpecError: missing, or not UTF-8.
    """
    if value is None:
        raise InvalidSpecError(what, None, "missing from Content-Disposition")
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise InvalidSpecError(what, repr(value[:40]), "not UTF-8") from exc
