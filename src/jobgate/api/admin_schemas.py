"""Schemas of the admin API (/v1/admin/...) and of /v1/me."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from jobgate.service.admin import ProjectView, TokenView, UserView
from jobgate.store.audit import AuditEntry

Name = Field(min_length=1, max_length=128)


class UserCreate(BaseModel):
    name: str = Name
    display_name: str = Field("", max_length=256)
    is_admin: bool = False
    roles: list[str] = Field(default_factory=list, max_length=8,
                             description="Extra rights: `ingest` (registry pushes)")


class UserUpdate(BaseModel):
    active: bool


class UserOut(BaseModel):
    name: str
    display_name: str
    is_admin: bool
    active: bool
    roles: list[str]
    created_at: datetime
    projects: dict[str, str] = Field(description="project -> member or manager")

    @classmethod
    def of(cls, user: UserView) -> UserOut:
        return cls(**user.__dict__)


class UserList(BaseModel):
    users: list[UserOut]


class ProjectCreate(BaseModel):
    name: str = Name
    compute_project_id: str | None = Field(None, max_length=128)
    description: str = Field("", max_length=4096)
    account: str | None = Field(None, max_length=128,
                                description="The Slurm account its jobs are charged to")
    clusters: list[str] = Field(default_factory=list, max_length=256,
                                description="Clusters its jobs may use (empty: all)")
    partitions: list[str] = Field(default_factory=list, max_length=1024,
                                  description="Partitions (`name` or `cluster:name`) its "
                                              "jobs may use (empty: all)")


class MemberSet(BaseModel):
    role: Literal["member", "manager"] = "member"


class ProjectOut(BaseModel):
    name: str
    compute_project_id: str | None
    description: str
    account: str | None
    clusters: list[str]
    partitions: list[str]
    created_at: datetime
    members: dict[str, str] = Field(description="user -> member or manager")

    @classmethod
    def of(cls, project: ProjectView) -> ProjectOut:
        return cls(**project.__dict__)


class ProjectList(BaseModel):
    projects: list[ProjectOut]


class TokenCreate(BaseModel):
    user: str = Name
    label: str = Field("", max_length=128)
    expires_at: datetime | None = Field(None, description="ISO 8601; none: never expires")
    acts_for: list[str] | None = Field(
        None, max_length=256, description="A service account's token: the projects whose "
                                          "users it may act for (X-On-Behalf-Of)")


class TokenOut(BaseModel):
    key_id: str = Field(description="The token's public id (list, revoke)")
    user: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    acts_for: list[str] | None

    @classmethod
    def of(cls, token: TokenView) -> TokenOut:
        return cls(**token.__dict__)


class TokenCreated(TokenOut):
    token: str = Field(description="The secret: shown this once, only its hash is kept")


class TokenList(BaseModel):
    tokens: list[TokenOut]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str | None = Field(description="The authenticated user (null: authentication "
                                          "failed)")
    on_behalf_of: str | None
    method: str
    path: str
    status: int
    address: str | None

    @classmethod
    def of(cls, item: AuditEntry) -> AuditOut:
        return cls(**item.__dict__)


class AuditList(BaseModel):
    entries: list[AuditOut]
    next_cursor: str | None


class MeOut(BaseModel):
    name: str
    is_admin: bool
    roles: list[str]
    acting_for: str | None = Field(description="With X-On-Behalf-Of: the user acted for "
                                               "(`name` is then the service account)")
    projects: list[ProjectOut] = Field(description="Projects usable, with where their jobs "
                                                   "may run")
