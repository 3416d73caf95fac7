"""`jobgate admin user|project ...` and `jobgate token ...`: users, projects,
memberships and tokens (an admin's token)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from jobgate.cli.common import connect, console, print_json
from jobgate.client.admin import Admin

admin_app = typer.Typer(help="Manage users and projects (needs an admin token).",
                        no_args_is_help=True)
user_app = typer.Typer(help="Users: add, list, disable.", no_args_is_help=True)
project_app = typer.Typer(help="Projects: add, list, and their members.", no_args_is_help=True)
member_app = typer.Typer(help="Project members: add (or change role), remove.",
                         no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.",
                        no_args_is_help=True)
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(project_app, name="project")
project_app.add_typer(member_app, name="member")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]


def _show(data: Any, as_json: bool, line: str) -> None:
    if as_json:
        print_json(data)
    else:
        typer.echo(line)


def _table(rows: list[list[str]], header: list[str]) -> None:
    from rich.table import Table

    table = Table(*header, box=None)
    for row in rows:
        table.add_row(*row)
    console().print(table)


@user_app.command("add")
def user_add(
    ctx: typer.Context, name: str,
    display_name: Annotated[str, typer.Option("--display-name")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="An administrator.")] = False,
    role: Annotated[list[str] | None, typer.Option("--role", help="e.g. ingest")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a user (then give them a token: `jobgate token create USER`)."""
    with connect(ctx) as client:
        user = Admin(client).add_user(name, display_name=display_name, is_admin=admin,
                                      roles=role or [])
    _show(user, as_json, f"user {user['name']} added")


@user_app.command("list")
def user_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with connect(ctx) as client:
        users = Admin(client).users()
    if as_json:
        print_json(users)
        return
    _table([[u["name"], u["display_name"], "yes" if u["is_admin"] else "",
             "" if u["active"] else "disabled", ",".join(u["roles"]),
             ",".join(f"{p}({r})" for p, r in sorted(u["projects"].items()))]
            for u in users], ["NAME", "DISPLAY NAME", "ADMIN", "STATUS", "ROLES", "PROJECTS"])


@user_app.command("disable")
def user_disable(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """Disable a user: their tokens fail from the next request on."""
    with connect(ctx) as client:
        user = Admin(client).set_user_active(name, False)
    _show(user, as_json, f"user {user['name']} disabled")


@user_app.command("enable")
def user_enable(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    with connect(ctx) as client:
        user = Admin(client).set_user_active(name, True)
    _show(user, as_json, f"user {user['name']} enabled")


@project_app.command("add")
def project_add(
    ctx: typer.Context, name: str,
    account: Annotated[str | None, typer.Option(help="Slurm account charged")] = None,
    cluster: Annotated[list[str] | None, typer.Option(
        "--cluster", help="A cluster its jobs may use (repeat; none: all)")] = None,
    partition: Annotated[list[str] | None, typer.Option(
        "--partition", help="A partition (NAME or CLUSTER:NAME) its jobs may use (repeat; "
                            "none: all)")] = None,
    description: Annotated[str, typer.Option()] = "",
    compute_project_id: Annotated[str | None, typer.Option("--compute-project-id")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a project."""
    with connect(ctx) as client:
        project = Admin(client).add_project(
            name, account=account, clusters=cluster or [], partitions=partition or [],
            description=description, compute_project_id=compute_project_id)
    _show(project, as_json, f"project {project['name']} added")


@project_app.command("list")
def project_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with connect(ctx) as client:
        projects = Admin(client).projects()
    if as_json:
        print_json(projects)
        return
    _table([[p["name"], p["account"] or "", ",".join(p["clusters"]) or "*",
             ",".join(p["partitions"]) or "*",
             ",".join(f"{u}({r})" for u, r in sorted(p["members"].items()))]
            for p in projects], ["NAME", "ACCOUNT", "CLUSTERS", "PARTITIONS", "MEMBERS"])


@member_app.command("add")
def member_add(
    ctx: typer.Context, project: str, user: str,
    manager: Annotated[bool, typer.Option("--manager", help="May steer the project's "
                                                            "jobs, not only see them")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add USER to PROJECT (or change their role)."""
    role = "manager" if manager else "member"
    with connect(ctx) as client:
        found = Admin(client).set_member(project, user, role)
    _show(found, as_json, f"{user} is a {role} of {project}")


@member_app.command("remove")
def member_remove(ctx: typer.Context, project: str, user: str, as_json: JsonOpt = False
                  ) -> None:
    with connect(ctx) as client:
        found = Admin(client).remove_member(project, user)
    _show(found, as_json, f"{user} removed from {project}")


@token_app.command("create")
def token_create(
    ctx: typer.Context, user: str,
    label: Annotated[str, typer.Option()] = "",
    expires: Annotated[str | None, typer.Option(
        "--expires", help="ISO 8601 time it stops working")] = None,
    acts_for: Annotated[list[str] | None, typer.Option(
        "--acts-for", help="A service account's token: a project whose users it may act "
                           "for with X-On-Behalf-Of (repeat)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token for USER; the token is printed this once."""
    with connect(ctx) as client:
        token = Admin(client).create_token(user, label=label, expires_at=expires,
                                           acts_for=acts_for or None)
    if as_json:
        print_json(token)
        return
    typer.echo(token["token"])
    typer.echo(f"token {token['key_id']} of {token['user']}: store it now, it is not shown "
               "again", err=True)


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's")] = None,
    as_json: JsonOpt = False,
) -> None:
    with connect(ctx) as client:
        tokens = Admin(client).tokens(user)
    if as_json:
        print_json(tokens)
        return

    def when(value: str | None) -> str:
        return (value or "")[:19]

    _table([[t["key_id"], t["user"], t["label"], when(t["created_at"]), when(t["expires_at"]),
             "revoked" if t["revoked_at"] else "", when(t["last_used_at"]),
             ",".join(t["acts_for"] or [])]
            for t in tokens],
           ["ID", "USER", "LABEL", "CREATED", "EXPIRES", "STATUS", "LAST USED", "ACTS FOR"])


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, key_id: str) -> None:
    """Revoke a token by its id (from `jobgate token list`)."""
    with connect(ctx) as client:
        Admin(client).revoke_token(key_id)
    typer.echo(f"token {key_id} revoked")
