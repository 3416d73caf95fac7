"""Users, projects, memberships and tokens: what admins manage."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jobgate.errors import ConflictError, InvalidSpecError, NotFoundError
from jobgate.service.auth import MANAGER, MEMBER, new_token
from jobgate.store.projects import ProjectRepository
from jobgate.store.tables import ProjectRow, TokenRow, UserRow
from jobgate.store.users import UserRepository

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
ROLES = frozenset({"ingest"})
MAX_TOKENS_PER_USER = 100


@dataclass(frozen=True)
class UserView:
    name: str
    display_name: str
    is_admin: bool
    active: bool
    roles: list[str]
    created_at: datetime
    projects: dict[str, str]


@dataclass(frozen=True)
class ProjectView:
    name: str
    compute_project_id: str | None
    description: str
    account: str | None
    clusters: list[str]
    partitions: list[str]
    created_at: datetime
    members: dict[str, str]


@dataclass(frozen=True)
class TokenView:
    key_id: str
    user: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    acts_for: list[str] | None


def check_name(field: str, value: str) -> str:
    """Raises:
    InvalidSpecError: not 1-128 letters, digits or `_ . @ -` (starting with a letter or digit).
    """
    if not NAME.match(value):
        raise InvalidSpecError(field, value, "use 1 to 128 letters, digits, '_', '.', '@' or "
                                             "'-', starting with a letter or digit")
    return value


def _token_view(row: TokenRow, user: str) -> TokenView:
    return TokenView(key_id=row.key_id, user=user, label=row.label, created_at=row.created_at,
                     expires_at=row.expires_at, revoked_at=row.revoked_at,
                     last_used_at=row.last_used_at,
                     acts_for=list(row.acts_for) if row.acts_for is not None else None)


class AdminService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    # -- users ----------------------------------------------------------------

    def add_user(self, name: str, *, display_name: str = "", is_admin: bool = False,
                 roles: Sequence[str] = ()) -> UserView:
        """Raises:
        InvalidSpecError: a bad name or an unknown role; ConflictError: the name is taken.
        """
        check_name("name", name)
        unknown = sorted(set(roles) - ROLES)
        if unknown:
            raise InvalidSpecError("roles", unknown, f"known roles: {', '.join(sorted(ROLES))}")
        with self.sessions.begin() as session:
            users = UserRepository(session)
            if users.get(name) is not None:
                raise ConflictError(f"user {name!r} exists already", details={"name": name})
            row = users.add(name, is_admin=is_admin, at=datetime.now(UTC),
                            display_name=display_name, roles=sorted(set(roles)))
            return self._user_view(session, row)

    def users(self) -> list[UserView]:
        with self.sessions() as session:
            return [self._user_view(session, row) for row in UserRepository(session).all()]

    def user(self, name: str) -> UserView:
        """Raises:
        NotFoundError: no such user.
        """
        with self.sessions() as session:
            return self._user_view(session, self._user(session, name))

    def set_active(self, name: str, active: bool) -> UserView:
        """Disable (their tokens stop working at once) or enable a user.

        Raises:
            NotFoundError: no such user.
        """
        with self.sessions.begin() as session:
            row = self._user(session, name)
            row.active = active
            session.flush()
            return self._user_view(session, row)

    @staticmethod
    def _user(session: Session, name: str) -> UserRow:
        row = UserRepository(session).get(name)
        if row is None:
            raise NotFoundError(f"no user {name!r}")
        return row

    @staticmethod
    def _user_view(session: Session, row: UserRow) -> UserView:
        return UserView(name=row.name, display_name=row.display_name, is_admin=row.is_admin,
                        active=row.active, roles=list(row.roles or []),
                        created_at=row.created_at,
                        projects=ProjectRepository(session).roles_of(row.id))

    # -- projects -------------------------------------------------------------

    def add_project(self, name: str, *, compute_project_id: str | None = None,
                    description: str = "", account: str | None = None,
                    clusters: Sequence[str] = (), partitions: Sequence[str] = ()
                    ) -> ProjectView:
        """Raises:
        InvalidSpecError: a bad name; ConflictError: the name is taken.
        """
        check_name("name", name)
        with self.sessions.begin() as session:
            projects = ProjectRepository(session)
            if projects.get(name) is not None:
                raise ConflictError(f"project {name!r} exists already", details={"name": name})
            row = projects.add(ProjectRow(
                name=name, compute_project_id=compute_project_id, description=description,
                account=account, clusters=list(clusters), partitions=list(partitions),
                created_at=datetime.now(UTC)))
            return self._project_view(session, row)

    def projects(self) -> list[ProjectView]:
        with self.sessions() as session:
            rows = ProjectRepository(session).all()
            members = ProjectRepository(session).members(r.id for r in rows)
            return [self._project_view(session, r, members[r.id]) for r in rows]

    def project(self, name: str) -> ProjectView:
        """Raises:
        NotFoundError: no such project.
        """
        with self.sessions() as session:
            return self._project_view(session, self._project(session, name))

    def set_member(self, project: str, user: str, role: str = MEMBER) -> ProjectView:
        """Add a user to a project, or change their role there.

        Raises:
            InvalidSpecError: a role other than member or manager.
            NotFoundError: no such project or user.
        """
        if role not in (MEMBER, MANAGER):
            raise InvalidSpecError("role", role, f"use {MEMBER!r} or {MANAGER!r}")
        with self.sessions.begin() as session:
            row = self._project(session, project)
            ProjectRepository(session).set_member(row, self._user(session, user), role)
            return self._project_view(session, row)

    def remove_member(self, project: str, user: str) -> ProjectView:
        """Raises:
        NotFoundError: no such project or user, or the user is not a member.
        """
        with self.sessions.begin() as session:
            row = self._project(session, project)
            if not ProjectRepository(session).remove_member(row, self._user(session, user)):
                raise NotFoundError(f"{user!r} is not a member of project {project!r}")
            return self._project_view(session, row)

    @staticmethod
    def _project(session: Session, name: str) -> ProjectRow:
        row = ProjectRepository(session).get(name)
        if row is None:
            raise NotFoundError(f"no project {name!r}")
        return row

    @staticmethod
    def _project_view(session: Session, row: ProjectRow,
                      members: list[tuple[str, str]] | None = None) -> ProjectView:
        if members is None:
            members = ProjectRepository(session).members([row.id])[row.id]
        return ProjectView(name=row.name, compute_project_id=row.compute_project_id,
                           description=row.description, account=row.account,
                           clusters=list(row.clusters), partitions=list(row.partitions),
                           created_at=row.created_at, members=dict(members))

    # -- tokens ---------------------------------------------------------------

    def create_token(self, user: str, *, label: str = "", expires_at: datetime | None = None,
                     acts_for: Sequence[str] | None = None) -> tuple[TokenView, str]:
        """A new token of `user` and its secret (shown this once; only a hash is kept).
        `acts_for` makes it a service account's token for those projects' users.

        Raises:
            NotFoundError: no such user or project.
            InvalidSpecError: an expiry in the past, or too many tokens.
        """
        now = datetime.now(UTC)
        if expires_at is not None and expires_at <= now:
            raise InvalidSpecError("expires_at", expires_at.isoformat(), "must be in the future")
        token = new_token()
        with self.sessions.begin() as session:
            owner = self._user(session, user)
            for project in acts_for or ():
                self._project(session, project)
            users = UserRepository(session)
            if len(users.tokens(owner.id)) >= MAX_TOKENS_PER_USER:
                raise InvalidSpecError("user", user, f"has {MAX_TOKENS_PER_USER} tokens "
                                                     "already; revoke some first")
            try:
                row = users.add_token(owner, token, label=label, at=now, expires_at=expires_at,
                                      acts_for=sorted(set(acts_for))
                                      if acts_for is not None else None)
            except IntegrityError as exc:  # a key id drawn twice: vanishingly rare
                raise ConflictError("token id taken; try again") from exc
            return _token_view(row, owner.name), token

    def tokens(self, user: str | None = None) -> list[TokenView]:
        """Raises:
        NotFoundError: no such user.
        """
        with self.sessions() as session:
            user_id = self._user(session, user).id if user is not None else None
            return [_token_view(row, name)
                    for row, name in UserRepository(session).tokens(user_id)]

    def revoke_token(self, key_id: str) -> TokenView:
        """Revoke a token: it fails from the next request on (revoking twice is fine).

        Raises:
            NotFoundError: no such token.
        """
        with self.sessions.begin() as session:
            found = UserRepository(session).token(key_id)
            if found is None:
                raise NotFoundError(f"no token {key_id!r}")
            row, owner = found
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                session.flush()
            return _token_view(row, owner.name)
