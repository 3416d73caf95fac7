"""GET /v1/jobs/{id}/files and /files/{path}: list and download, never outside."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from api_client import Api


def ended_job(api: Api, command: str, **spec: Any) -> dict[str, Any]:
    job = api.submit(command=command, **spec)
    assert api.wait_final(job["id"])["state"] == "COMPLETED"
    return job


def test_list_and_download(api: Api) -> None:
    job = ended_job(api, "mkdir -p out/deep && printf 'a,b\\n1,2\\n' > out/table.csv "
                         "&& printf x > out/deep/x.bin && echo done")
    answer = api.get(f"/v1/jobs/{job['id']}/files")
    assert answer.status_code == 200
    listing = answer.json()
    assert listing["truncated"] is False
    entries = {e["path"]: e for e in listing["files"]}
    assert list(entries) == sorted(entries)
    assert {k: (v["type"], v["size"]) for k, v in entries.items()} == {
        "out": ("dir", 0), "out/deep": ("dir", 0), "out/deep/x.bin": ("file", 1),
        "out/table.csv": ("file", 8), f"jobgate-{job['id']}.out": ("file", 5),
        f"jobgate-{job['id']}.err": ("file", 0),
    }
    assert entries["out/table.csv"]["mtime"].endswith("Z") or "+00:00" in \
        entries["out/table.csv"]["mtime"]

    below = api.get(f"/v1/jobs/{job['id']}/files", params={"path": "out/deep"}).json()
    assert [e["path"] for e in below["files"]] == ["out/deep/x.bin"]
    some = api.get(f"/v1/jobs/{job['id']}/files", params={"limit": 2}).json()
    assert some["truncated"] is True and len(some["files"]) == 2

    download = api.get(f"/v1/jobs/{job['id']}/files/out/table.csv")
    assert download.status_code == 200
    assert download.content == b"a,b\n1,2\n"
    assert download.headers["content-length"] == "8"
    assert download.headers["content-type"].startswith("text/csv")
    assert "table.csv" in download.headers["content-disposition"]
    stdout = api.get(f"/v1/jobs/{job['id']}/files/jobgate-{job['id']}.out")
    assert stdout.content == b"done\n"


def test_no_way_out(api: Api, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    job = ended_job(api, f"ln -s {secret} leak; ln -s {tmp_path} leakdir; "
                         "echo in > inside.txt; ln -s inside.txt alias; mkfifo pipe")
    base = f"/v1/jobs/{job['id']}/files"
    # Dots are sent encoded: a client would otherwise fold them away itself.
    for path in ("%2E%2E/%2E%2E/secret.txt", "a/%2E%2E/%2E%2E/x", "%2Fetc%2Fpasswd"):
        answer = api.get(f"{base}/{path}")
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["details"][0]["field"] == "path"
    for path in ("leak", "leakdir/secret.txt"):
        answer = api.get(f"{base}/{path}")
        assert answer.status_code == 403, (path, answer.text)
        assert "leads outside" in answer.json()["message"]
        assert "not yours" not in answer.text
    assert api.get(base, params={"path": "leakdir"}).status_code == 403
    assert api.get(base, params={"path": "../"}).status_code == 422
    # A link that stays inside is followed; the listing shows links as links.
    assert api.get(f"{base}/alias").content == b"in\n"
    kinds = {e["path"]: e["type"] for e in api.get(base).json()["files"]}
    assert (kinds["leak"], kinds["leakdir"], kinds["alias"], kinds["pipe"]) == (
        "symlink", "symlink", "symlink", "other")
    # Not a regular file: refused without blocking on the FIFO.
    assert api.get(f"{base}/pipe").status_code == 422


def test_errors(api: Api) -> None:
    job = ended_job(api, "mkdir sub; echo x > sub/f")
    base = f"/v1/jobs/{job['id']}/files"
    missing = api.get(f"{base}/nope.txt")
    assert missing.status_code == 404 and "nope.txt" in missing.json()["message"]
    assert api.get(f"{base}/sub/f/deeper").status_code in (403, 404)
    directory = api.get(f"{base}/sub")
    assert directory.status_code == 422 and "a directory" in directory.json()["message"]
    assert api.get(base, params={"path": "sub/f"}).status_code == 422
    assert api.get(base, params={"path": "nowhere"}).status_code == 404
    assert api.get(base, params={"limit": 0}).status_code == 422
    assert api.get("/v1/jobs/999999/files").status_code == 404
    assert api.get("/v1/jobs/999999/files/x").status_code == 404


def test_only_the_owner_sees_the_files(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    bob = api.add_user("bob", "bob-token")
    job = api.post("/v1/jobs", json={"command": "echo mine > f"}, headers=ana).json()
    api.wait_final(job["id"])
    assert api.get(f"/v1/jobs/{job['id']}/files", headers=bob).status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}/files/f", headers=bob).status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}/files/f", headers=ana).content == b"mine\n"
    assert api.get(f"/v1/jobs/{job['id']}/files", headers={}).status_code == 401


def test_a_removed_working_directory_is_a_404(api: Api, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    job = ended_job(api, "true", working_directory=str(gone))
    for name in os.listdir(gone):
        (gone / name).unlink()
    gone.rmdir()
    answer = api.get(f"/v1/jobs/{job['id']}/files")
    assert answer.status_code == 404 and "working directory" in answer.json()["message"]


def test_a_pending_job_lists_no_files_until_its_directory_is_made(api: Api) -> None:
    job = api.submit(command="echo made", hold=True)
    answer = api.get(f"/v1/jobs/{job['id']}/files")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"files": [], "truncated": False}
    assert api.post(f"/v1/jobs/{job['id']}/release").status_code == 200
    assert api.wait_final(job["id"])["state"] == "COMPLETED"
    names = [f["path"] for f in api.get(f"/v1/jobs/{job['id']}/files").json()["files"]]
    assert names == [f"jobgate-{job['id']}.err", f"jobgate-{job['id']}.out"]
