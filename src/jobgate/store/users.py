"""Users and their API tokens (only token hashes are stored)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from jobgate.store.tables import TokenRow, UserRow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_key_id() -> str:
    return secrets.token_hex(6)


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

    def token_and_user(self, token: str) -> tuple[TokenRow, UserRow] | None:
        """The token (revoked and expired ones too) and its user, by the token's hash."""
        query = (
            select(TokenRow, UserRow)
            .join(UserRow, TokenRow.user_id == UserRow.id)
            .where(TokenRow.token_hash == hash_token(token))
        )
        found = self.session.execute(query).first()
        return (found[0], found[1]) if found is not None else None

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
