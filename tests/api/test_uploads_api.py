"""Multipart submissions: a spec, input files and a zip, placed before the job starts."""

from __future__ import annotations

import io
import json
import stat
import threading
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from api_client import Api
from fastapi.testclient import TestClient

from jobgate.api.app import create_app
from jobgate.config import Settings


def post(api: Api, spec: dict[str, Any] | str, files: Sequence[tuple[str, bytes]] = (),
         archive: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """A multipart submission (the spec as a plain field, then the files)."""
    text = spec if isinstance(spec, str) else json.dumps(spec)
    parts: list[tuple[str, tuple[str | None, bytes] | tuple[str, bytes, str]]] = [
        ("spec", (None, text.encode())),
        *(("files", (name, data, "application/octet-stream")) for name, data in files)]
    if archive is not None:
        parts.append(("archive", ("inputs.zip", archive, "application/zip")))
    return api.client.post("/v1/jobs", files=parts, headers={**api.headers, **(headers or {})})


def make_zip(*entries: tuple[str, bytes] | zipfile.ZipInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                archive.writestr(entry, data)
            else:
                archive.writestr(*entry)
    return buffer.getvalue()


def special(name: str, kind: int, mode: int = 0o777) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (kind | mode) << 16
    return info


def everything_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


def test_a_job_reads_its_uploaded_inputs(api: Api, settings: Settings) -> None:
    archive = make_zip(("data/numbers.txt", b"1\n2\n3\n"), ("data/sub/", b""),
                       ("README", b"from the zip\n"))
    command = "cat input.txt data/numbers.txt README; wc -l < data/numbers.txt"
    answer = post(api, {"command": command},
                  files=[("input.txt", b"hello from the upload\n")], archive=archive)
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["working_directory"] == str(settings.jobs_dir / str(job["id"]))
    assert api.wait_final(job["id"])["state"] == "COMPLETED"
    out = api.get(f"/v1/jobs/{job['id']}/stdout").text
    assert out == "hello from the upload\n1\n2\n3\nfrom the zip\n3\n"
    listed = {e["path"] for e in api.get(f"/v1/jobs/{job['id']}/files").json()["files"]}
    assert {"input.txt", "data", "data/numbers.txt", "data/sub", "README"} <= listed
    # The staging area is empty again.
    assert everything_under(settings.resolved_home / "uploads") == set()


def test_an_executable_in_the_zip_stays_executable(api: Api) -> None:
    tool = special("bin/tool.sh", stat.S_IFREG, 0o755)
    answer = post(api, {"command": "./bin/tool.sh"}, archive=make_zip(
        tool, data=b"#!/bin/bash\necho tool ran\n"))
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert api.wait_final(job["id"])["state"] == "COMPLETED"
    assert api.get(f"/v1/jobs/{job['id']}/stdout").text == "tool ran\n"


@pytest.mark.parametrize(("entry", "why"), [
    (("../evil", b"x"), "`..`"),
    (("a/../../evil", b"x"), "`..`"),
    (("/tmp/evil-absolute", b"x"), "absolute"),
    (("dir\\evil", b"x"), "backslash"),
    (special("link", stat.S_IFLNK), "symbolic link"),
    (special("dev", stat.S_IFCHR), "device"),
    (special("pipe", stat.S_IFIFO), "FIFO"),
])
def test_a_zip_that_could_escape_is_refused(
        api: Api, settings: Settings, tmp_path: Path, entry: Any, why: str) -> None:
    before = everything_under(settings.resolved_home)
    archive = make_zip(("fine.txt", b"ok"), entry, data=b"/etc/passwd")
    answer = post(api, {"command": "true"}, files=[("input.txt", b"x")], archive=archive)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    name = entry.filename if isinstance(entry, zipfile.ZipInfo) else entry[0]
    assert repr(name) in body["message"] and why in body["message"]
    # Nothing was written, in the home or beside it, and no job was made.
    assert everything_under(settings.resolved_home) - {"uploads"} == before
    assert not (settings.resolved_home.parent / "evil").exists()
    assert not Path("/tmp/evil-absolute").exists()
    assert api.get("/v1/jobs").json()["jobs"] == []


@contextmanager
def limited(settings: Settings, total: int, files: int, file: int) -> Iterator[Api]:
    tight = settings.model_copy(update={"upload_max_total_bytes": total,
                                        "upload_max_files": files, "upload_max_file_bytes": file})
    with TestClient(create_app(tight)) as client:
        yield Api(client, tight.admin_token_path.read_text().strip())


@pytest.fixture
def small(settings: Settings) -> Iterator[Api]:
    with limited(settings, 1000, 3, 400) as api:
        yield api


@pytest.mark.parametrize(("files", "archive", "limit"), [
    ([("a", b"x" * 401)], None, "upload_max_file_bytes"),
    ([("a", b"x"), ("b", b"x"), ("c", b"x")], make_zip(("d", b"x")), "upload_max_files"),
    ([("a", b"x"), ("b", b"x"), ("c", b"x"), ("d", b"x")], None, "upload_max_files"),
    ([("a", b"x" * 390), ("b", b"x" * 390), ("c", b"x" * 390)], None, "upload_max_total_bytes"),
    ([], make_zip(*((f"f{i}", b"") for i in range(4))), "upload_max_files"),
    ([], make_zip(*((f"f{i}", b"x" * 390) for i in range(3))), "upload_max_total_bytes"),
])
def test_limits_answer_413_naming_the_limit(
        small: Api, settings: Settings, files: list[tuple[str, bytes]], archive: bytes | None,
        limit: str) -> None:
    answer = post(small, {"command": "true"}, files=files, archive=archive)
    assert answer.status_code == 413, answer.text
    assert answer.json()["details"]["limit"] == limit
    assert limit in answer.json()["message"]
    assert small.get("/v1/jobs").json()["jobs"] == []
    assert everything_under(settings.jobs_dir) == set()
    assert everything_under(settings.resolved_home / "uploads") == set()


@pytest.mark.parametrize(("entries", "limit"), [
    ([("bomb", b"\0" * 50_000_000)], "upload_max_file_bytes"),
    ([(f"bomb{i}", b"\0" * 900_000) for i in range(30)], "upload_max_total_bytes"),
])
def test_a_zip_bomb_stops_at_the_limit(settings: Settings, entries: list[tuple[str, bytes]],
                                       limit: str) -> None:
    archive = make_zip(*entries)
    assert len(archive) < 100_000  # what the headers claim is not what counts
    with limited(settings, 10_000_000, 100, 1_000_000) as api:
        answer = post(api, {"command": "true"}, archive=archive)
        assert answer.status_code == 413, answer.text
        assert answer.json()["details"]["limit"] == limit
        assert api.get("/v1/jobs").json()["jobs"] == []
    assert everything_under(settings.resolved_home / "uploads") == set()


def test_a_body_past_the_upload_cap_is_cut_short(small: Api) -> None:
    # The cap is the total upload limit plus room for the spec (8 MiB).
    answer = post(small, {"command": "true"}, files=[("big", b"x" * (9 * 1024 * 1024))])
    assert answer.status_code == 413
    assert answer.json()["details"]["limit"] == "upload_max_total_bytes"


def test_bad_forms(api: Api) -> None:
    def send(parts: list[tuple[str, Any]]) -> Any:
        return api.client.post("/v1/jobs", files=parts, headers=api.headers)

    missing = send([("files", ("a", b"x"))])
    assert missing.status_code == 422 and "spec" in missing.json()["message"]
    not_json = post(api, "{nope")
    assert not_json.status_code == 422 and "not JSON" in not_json.json()["message"]
    bad_field = post(api, {"command": "true", "nodes": 0})
    assert bad_field.status_code == 422
    assert bad_field.json()["details"][0]["field"] == "nodes"
    unknown = send([("spec", (None, b'{"command": "true"}')), ("other", ("a", b"x"))])
    assert unknown.status_code == 422 and "unknown part" in unknown.json()["message"]
    twice = post(api, {"command": "true"}, files=[("a", b"1"), ("a", b"2")])
    assert twice.status_code == 422 and "sent twice" in twice.json()["message"]
    clash = post(api, {"command": "true"}, files=[("a", b"1"), ("a/b", b"2")])
    assert clash.status_code == 422
    not_zip = post(api, {"command": "true"}, archive=b"PK not really")
    assert not_zip.status_code == 422 and "not a zip" in not_zip.json()["message"]
    array = post(api, {"command": "true", "array": "0-1"}, files=[("a", b"1")])
    assert array.status_code == 422 and "working_directory" in array.json()["message"]
    boundary = "xyzzy"
    cut = (f'--{boundary}\r\nContent-Disposition: form-data; name="spec"\r\n\r\n'
           '{"command": "cat a"}\r\n'
           f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n'
           '\r\nonly the first half')
    cut_short = api.client.post("/v1/jobs", content=cut.encode(), headers={
        **api.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert cut_short.status_code == 422 and "cut short" in cut_short.json()["message"]
    no_boundary = api.client.post("/v1/jobs", content=b"x", headers={
        **api.headers, "Content-Type": "multipart/form-data"})
    assert no_boundary.status_code == 422
    assert api.get("/v1/jobs").json()["jobs"] == []
    assert api.client.post("/v1/jobs", files=[("spec", (None, b"{}"))]).status_code == 401


def test_existing_files_in_a_chosen_directory_are_never_overwritten(
        api: Api, tmp_path: Path, settings: Settings) -> None:
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    (chosen / "input.txt").write_text("mine")
    answer = post(api, {"command": "true", "working_directory": str(chosen)},
                  files=[("new.txt", b"new"), ("input.txt", b"theirs")])
    assert answer.status_code == 422, answer.text
    assert "input.txt" in answer.json()["message"]
    assert "does not overwrite" in answer.json()["message"]
    assert (chosen / "input.txt").read_text() == "mine"
    assert sorted(p.name for p in chosen.iterdir()) == ["input.txt"]  # new.txt taken back
    assert api.get("/v1/jobs").json()["jobs"] == []
    placed = post(api, {"command": "cat sub/new.txt", "working_directory": str(chosen)},
                  files=[("sub/new.txt", b"new\n")])
    assert placed.status_code == 201, placed.text
    assert api.wait_final(placed.json()["id"])["state"] == "COMPLETED"
    assert (chosen / "sub" / "new.txt").read_text() == "new\n"


def test_idempotency_key_with_files(api: Api) -> None:
    key = {"Idempotency-Key": "upload-1"}
    first = post(api, {"command": "cat a"}, files=[("a", b"one\n")], headers=key)
    again = post(api, {"command": "cat a"}, files=[("a", b"one\n")], headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = post(api, {"command": "cat a"}, files=[("a", b"two\n")], headers=key)
    assert other.status_code == 422 and "different request" in other.json()["message"]
    assert [j["id"] for j in api.get("/v1/jobs").json()["jobs"]] == [first.json()["id"]]
    api.wait_final(first.json()["id"])
    assert api.get(f"/v1/jobs/{first.json()['id']}/stdout").text == "one\n"


def test_a_user_uploads_into_their_own_job(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    answer = post(api, {"command": "cat a"}, files=[("a", b"ana's\n")], headers=ana)
    assert answer.status_code == 201
    job = answer.json()
    assert job["user_name"] == "ana"
    api.wait_final(job["id"])
    assert api.get(f"/v1/jobs/{job['id']}/stdout", headers=ana).text == "ana's\n"


def test_the_openapi_document_describes_both_forms(api: Api) -> None:
    document = api.get("/openapi.json").json()
    content = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(content)
    assert "413" in document["paths"]["/v1/jobs"]["post"]["responses"]
    assert "delete" in document["paths"]["/v1/jobs/{job_id}"]
    assert "/v1/jobs/{job_id}/files/{path}" in document["paths"]


def test_the_same_key_sent_concurrently_makes_one_job_and_one_set_of_files(
        api: Api, settings: Settings) -> None:
    answers: list[Any] = []
    go = threading.Barrier(6)

    def send() -> None:
        go.wait()
        answers.append(post(api, {"command": "cat a", "hold": True},
                            files=[("a", b"raced\n")], headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    assert [j["id"] for j in api.get("/v1/jobs").json()["jobs"]] == list(ids)
    # The losers' jobs were rolled back, and their files taken back with them.
    assert sorted(p.name for p in settings.jobs_dir.iterdir()) == [str(min(ids))]
    assert (settings.jobs_dir / str(min(ids)) / "a").read_bytes() == b"raced\n"
