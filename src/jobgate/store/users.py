"""Users and their API tokens (only token hashes are stored)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.orm import Session

from jobgate.store.tables import MembershipRow, ProjectRow, TokenRow, UserRow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_key_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class TokenHolder:
    """What a request's token stands for, read in one statement."""

    token_hash: str
    revoked_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    acts_for: list[str] | None
    user_name: str
    is_admin: bool
    active: bool
    roles: list[str]
    projects: dict[str, str]  # project name -> role


# Built once: every request runs it, and building a statement costs more than
# running it (SQLAlchemy caches the compiled form of this very object).
_TOKEN_HOLDER = (
    select(TokenRow.revoked_at, TokenRow.expires_at, TokenRow.last_used_at, TokenRow.acts_for,
           UserRow.name, UserRow.is_admin, UserRow.active, UserRow.roles,
           ProjectRow.name.label("project"), MembershipRow.role)
    .select_from(TokenRow)
    .join(UserRow, TokenRow.user_id == UserRow.id)
    .outerjoin(MembershipRow, MembershipRow.user_id == UserRow.id)
    .outerjoin(ProjectRow, ProjectRow.id == MembershipRow.project_id)
    .where(TokenRow.token_hash == bindparam("token_hash"))
)


def token_holder(connection: Connection, token: str) -> TokenHolder | None:
    """The token (revoked and expired ones too), its user and the user's
    projects, or None for an unknown token."""
    token_hash = hash_token(token)
    rows = connection.execute(_TOKEN_HOLDER, {"token_hash": token_hash}).all()
    if not rows:
        return None
    first = rows[0]
    return TokenHolder(
        token_hash=token_hash, revoked_at=first.revoked_at, expires_at=first.expires_at,
        last_used_at=first.last_used_at, acts_for=first.acts_for, user_name=first.name,
        is_admin=first.is_admin, active=first.active, roles=first.roles or [],
        projects={row.project: row.role for row in rows if row.project is not None})


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(UserRow)) or 0

    def add(self, name: str, *, is_admin: bool, at: datetime, display_name: str = "",
            roles: Sequence[str] = ()) -> UserRow:
        row = UserRow(name=name, is_admin=is_admin, created_at=at, display_name=display_name,
                      active=True, roles=list(roles))
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, name: str) -> UserRow | None:
        return self.session.scalars(select(UserRow).where(UserRow.name == name)).first()

    def all(self) -> list[UserRow]:
        return list(self.session.scalars(select(UserRow).order_by(UserRow.name)))

    def add_token(self, user: UserRow, token: str, *, label: str, at: datetime,
                  expires_at: datetime | None = None,
                  acts_for: Sequence[str] | None = None) -> TokenRow:
        row = TokenRow(token_hash=hash_token(token), user_id=user.id, label=label, created_at=at,
                       key_id=new_key_id(), expires_at=expires_at,
                       acts_for=list(acts_for) if acts_for is not None else None)
        self.session.add(row)
        self.session.flush()
        return row

    def by_token(self, token: str) -> UserRow | None:
        query = (
            select(UserRow)
            .join(TokenRow, TokenRow.user_id == UserRow.id)
            .where(TokenRow.token_hash == hash_token(token))
        )
        return self.session.scalars(query).first()

    def touch_token(self, token_hash: str, at: datetime) -> None:
        self.session.execute(update(TokenRow).where(TokenRow.token_hash == token_hash)
                             .values(last_used_at=at))

    def tokens(self, user_id: int | None = None) -> list[tuple[TokenRow, str]]:
        """Tokens with their user's name, newest first (one user's, or all)."""
        query = (select(TokenRow, UserRow.name).join(UserRow, TokenRow.user_id == UserRow.id)
                 .order_by(TokenRow.created_at.desc(), TokenRow.key_id))
        if user_id is not None:
            query = query.where(TokenRow.user_id == user_id)
        return [(token, name) for token, name in self.session.execute(query).all()]

    def token(self, key_id: str) -> tuple[TokenRow, UserRow] | None:
        found = self.session.execute(
            select(TokenRow, UserRow).join(UserRow, TokenRow.user_id == UserRow.id)
            .where(TokenRow.key_id == key_id)).first()
        return (found[0], found[1]) if found is not None else None
