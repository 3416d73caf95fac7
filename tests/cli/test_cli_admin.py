"""`jobgate admin ...` and `jobgate token ...` end to end: the admin token made
at the server's first start creates users, projects, members and tokens, and the
tokens so made work (or stop working) against the running server."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from jobgate import Client, Job
from server_process import LiveServer, Run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def me(server: LiveServer, token: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/me", timeout=30,
                     headers={"Authorization": f"Bearer {token}", **headers})


def test_admin_makes_users_projects_members_and_tokens(jobgate_cli: Run,
                                                       server: LiveServer) -> None:
    tag = uuid.uuid4().hex[:8]
    user, project, other = f"ana{tag}", f"proj{tag}", f"bob{tag}"

    assert ok(jobgate_cli("admin", "user", "add", user, "--display-name", "Ana Lyst")
              ) == f"user {user} added\n"
    assert ok(jobgate_cli("admin", "user", "add", other)) == f"user {other} added\n"
    assert ok(jobgate_cli("admin", "project", "add", project, "--account", f"acct{tag}",
                          "--partition", "normal", "--description", "CLI test")
              ) == f"project {project} added\n"
    assert ok(jobgate_cli("admin", "project", "member", "add", project, user, "--manager")
              ) == f"{user} is a manager of {project}\n"
    assert ok(jobgate_cli("admin", "project", "member", "add", project, other)
              ) == f"{other} is a member of {project}\n"

    users = {u["name"]: u for u in as_json(jobgate_cli("admin", "user", "list", "--json"))}
    assert users[user]["display_name"] == "Ana Lyst" and users[user]["active"]
    assert users[user]["projects"] == {project: "manager"}
    table = ok(jobgate_cli("admin", "user", "list"))
    assert any(line.split()[:3] == [user, "Ana", "Lyst"] and f"{project}(manager)" in line
               for line in table.splitlines()), table
    projects = {p["name"]: p for p in as_json(jobgate_cli("admin", "project", "list",
                                                          "--json"))}
    assert projects[project]["members"] == {user: "manager", other: "member"}
    assert projects[project]["account"] == f"acct{tag}"
    assert projects[project]["partitions"] == ["normal"]

    # A token, printed once on stdout, works at once: the user and the project.
    created = jobgate_cli("token", "create", user, "--label", "laptop")
    secret = ok(created).strip()
    assert secret.startswith("jg_") and "not shown again" in created.stderr
    answer = me(server, secret)
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == user
    assert [p["name"] for p in answer.json()["projects"]] == [project]
    # The user's own token runs the CLI as them: a job in their project.
    submitted = ok(jobgate_cli("submit", "--wrap", "true", "--hold", JOBGATE_TOKEN=secret))
    job_id = int(submitted.split()[-1])
    shown = as_json(jobgate_cli("show", str(job_id), "--json", JOBGATE_TOKEN=secret))
    assert (shown["user_name"], shown["project"]) == (user, project)
    with Client(server.url, secret) as client:  # the SDK's Job has it too
        assert Job.load(job_id, client).project == project
    ok(jobgate_cli("cancel", str(job_id), JOBGATE_TOKEN=secret))
    # ... and not an admin: the admin commands say so.
    refused = jobgate_cli("admin", "user", "list", JOBGATE_TOKEN=secret)
    assert refused.returncode != 0 and "admin" in refused.stderr
    assert "Traceback" not in refused.stderr

    tokens = as_json(jobgate_cli("token", "list", "--user", user, "--json"))
    assert [(t["user"], t["label"], t["revoked_at"]) for t in tokens] == [
        (user, "laptop", None)]
    assert tokens[0]["last_used_at"] is not None
    assert secret not in ok(jobgate_cli("token", "list"))
    key = tokens[0]["key_id"]
    listed = ok(jobgate_cli("token", "list", "--user", user))
    assert key in listed and "laptop" in listed

    # Revoked: 401 from the very next request.
    assert ok(jobgate_cli("token", "revoke", key)) == f"token {key} revoked\n"
    assert me(server, secret).status_code == 401
    assert as_json(jobgate_cli("token", "list", "--user", user, "--json"))[0]["revoked_at"]
    assert "revoked" in ok(jobgate_cli("token", "list", "--user", user))

    # A service account for the project's users, with an expiry.
    svc = f"svc{tag}"
    ok(jobgate_cli("admin", "user", "add", svc))
    expires = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    portal = as_json(jobgate_cli("token", "create", svc, "--acts-for", project,
                                 "--expires", expires.isoformat(), "--json"))
    assert portal["acts_for"] == [project]
    assert datetime.fromisoformat(portal["expires_at"]) == expires
    acting = me(server, portal["token"], **{"X-On-Behalf-Of": other})
    assert acting.status_code == 200, acting.text
    assert (acting.json()["name"], acting.json()["acting_for"]) == (svc, other)
    assert me(server, portal["token"], **{"X-On-Behalf-Of": "admin"}).status_code == 403

    # Removed from the project: the service account may no longer act for them.
    assert ok(jobgate_cli("admin", "project", "member", "remove", project, other)
              ) == f"{other} removed from {project}\n"
    assert me(server, portal["token"], **{"X-On-Behalf-Of": other}).status_code == 403
    projects = {p["name"]: p for p in as_json(jobgate_cli("admin", "project", "list",
                                                          "--json"))}
    assert projects[project]["members"] == {user: "manager"}

    # Disabled: every token of theirs fails from the next request; enabled again.
    second = ok(jobgate_cli("token", "create", user)).strip()
    assert me(server, second).status_code == 200
    assert ok(jobgate_cli("admin", "user", "disable", user)) == f"user {user} disabled\n"
    assert me(server, second).status_code == 401
    users = {u["name"]: u for u in as_json(jobgate_cli("admin", "user", "list", "--json"))}
    assert users[user]["active"] is False
    assert "disabled" in ok(jobgate_cli("admin", "user", "list"))
    ok(jobgate_cli("admin", "user", "enable", user))
    assert me(server, second).status_code == 200


def test_admin_commands_say_what_is_wrong(jobgate_cli: Run) -> None:
    tag = uuid.uuid4().hex[:8]
    ok(jobgate_cli("admin", "user", "add", f"dup{tag}"))
    cases = [
        (("admin", "user", "add", f"dup{tag}"), f"dup{tag}"),
        (("admin", "user", "disable", f"ghost{tag}"), f"ghost{tag}"),
        (("admin", "project", "member", "add", f"noproj{tag}", f"dup{tag}"), f"noproj{tag}"),
        (("token", "create", f"ghost{tag}"), f"ghost{tag}"),
        (("token", "create", f"dup{tag}", "--expires", "2001-01-01T00:00:00Z"), "future"),
        (("token", "revoke", "000000000000"), "000000000000"),
    ]
    for args, text in cases:
        result = jobgate_cli(*args)
        assert result.returncode != 0, args
        assert text in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
