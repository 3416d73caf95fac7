"""/v1/admin/...: users, projects, memberships, tokens and the audit log (admins
only: 403 for anyone else); /v1/me: who the caller is and what they may use."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from jobgate.api.admin_schemas import (
    AuditList,
    AuditOut,
    MemberSet,
    MeOut,
    ProjectCreate,
    ProjectList,
    ProjectOut,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
    UserCreate,
    UserList,
    UserOut,
    UserUpdate,
)
from jobgate.api.deps import AdminDep, GatewayDep, UserDep
from jobgate.api.error_docs import errors
from jobgate.store.audit import AuditFilter

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=errors(403))
me_router = APIRouter(tags=["admin"])


@me_router.get("/v1/me", response_model=MeOut)
def me(gateway: GatewayDep, user: UserDep) -> MeOut:
    """Who the caller is, and the projects (clusters, partitions, account) they may use."""
    projects = [ProjectOut.of(p) for p in gateway.admin.projects() if p.name in user.projects]
    for project in projects:
        # A member sees who else is in the project, not their roles elsewhere.
        project.members = {k: v for k, v in project.members.items()} if \
            user.projects.get(project.name) == "manager" else {}
    return MeOut(name=user.actor or user.name, is_admin=user.is_admin,
                 roles=sorted(user.roles), acting_for=user.name if user.actor else None,
                 projects=projects)


@router.post("/users", response_model=UserOut, status_code=201, responses=errors(409))
def add_user(body: UserCreate, gateway: GatewayDep, _admin: AdminDep) -> UserOut:
    return UserOut.of(gateway.admin.add_user(body.name, display_name=body.display_name,
                                             is_admin=body.is_admin, roles=body.roles))


@router.get("/users", response_model=UserList)
def list_users(gateway: GatewayDep, _admin: AdminDep) -> UserList:
    return UserList(users=[UserOut.of(u) for u in gateway.admin.users()])


@router.get("/users/{name}", response_model=UserOut)
def get_user(name: str, gateway: GatewayDep, _admin: AdminDep) -> UserOut:
    return UserOut.of(gateway.admin.user(name))


@router.patch("/users/{name}", response_model=UserOut)
def update_user(name: str, body: UserUpdate, gateway: GatewayDep, _admin: AdminDep) -> UserOut:
    """Disable a user (`active: false`: their tokens fail from the next request) or
    enable them again."""
    return UserOut.of(gateway.admin.set_active(name, body.active))


@router.post("/projects", response_model=ProjectOut, status_code=201, responses=errors(409))
def add_project(body: ProjectCreate, gateway: GatewayDep, _admin: AdminDep) -> ProjectOut:
    return ProjectOut.of(gateway.admin.add_project(
        body.name, compute_project_id=body.compute_project_id, description=body.description,
        account=body.account, clusters=body.clusters, partitions=body.partitions))


@router.get("/projects", response_model=ProjectList)
def list_projects(gateway: GatewayDep, _admin: AdminDep) -> ProjectList:
    return ProjectList(projects=[ProjectOut.of(p) for p in gateway.admin.projects()])


@router.get("/projects/{name}", response_model=ProjectOut)
def get_project(name: str, gateway: GatewayDep, _admin: AdminDep) -> ProjectOut:
    return ProjectOut.of(gateway.admin.project(name))


@router.put("/projects/{name}/members/{user}", response_model=ProjectOut)
def set_member(name: str, user: str, gateway: GatewayDep, _admin: AdminDep,
               body: MemberSet | None = None) -> ProjectOut:
    """Add a user to the project as `member` (sees its jobs) or `manager` (steers
    them too), or change their role."""
    return ProjectOut.of(gateway.admin.set_member(name, user, (body or MemberSet()).role))


@router.delete("/projects/{name}/members/{user}", response_model=ProjectOut)
def remove_member(name: str, user: str, gateway: GatewayDep, _admin: AdminDep) -> ProjectOut:
    return ProjectOut.of(gateway.admin.remove_member(name, user))


@router.post("/tokens", response_model=TokenCreated, status_code=201,
             responses=errors(404))
def create_token(body: TokenCreate, gateway: GatewayDep, _admin: AdminDep) -> TokenCreated:
    """A new token for `user`; the answer's `token` is shown this once."""
    view, secret = gateway.admin.create_token(body.user, label=body.label,
                                              expires_at=body.expires_at,
                                              acts_for=body.acts_for)
    return TokenCreated(**TokenOut.of(view).model_dump(), token=secret)


@router.get("/tokens", response_model=TokenList, responses=errors(404))
def list_tokens(gateway: GatewayDep, _admin: AdminDep,
                user: Annotated[str | None, Query(max_length=128)] = None) -> TokenList:
    return TokenList(tokens=[TokenOut.of(t) for t in gateway.admin.tokens(user)])


@router.delete("/tokens/{key_id}", status_code=204, response_class=Response)
def revoke_token(key_id: str, gateway: GatewayDep, _admin: AdminDep) -> Response:
    """Revoke: the token fails (401) from the very next request."""
    gateway.admin.revoke_token(key_id)
    return Response(status_code=204)


@router.get("/audit", response_model=AuditList)
def read_audit(
    gateway: GatewayDep, _admin: AdminDep,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    on_behalf_of: Annotated[str | None, Query(max_length=128)] = None,
    method: Annotated[str | None, Query(max_length=8)] = None,
    path: Annotated[str | None, Query(max_length=2000, description="A path prefix")] = None,
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    since: datetime | None = None, until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None,
) -> AuditList:
    """State-changing calls, newest first, with filters; `next_cursor` pages on."""
    entries, next_cursor = gateway.audit.read(
        AuditFilter(actor=actor, on_behalf_of=on_behalf_of, method=method, path_prefix=path,
                    status=status, since=since, until=until), limit=limit, cursor=cursor)
    return AuditList(entries=[AuditOut.of(e) for e in entries], next_cursor=next_cursor)
