"""Users and their API tokens (only token hashes are stored)."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobgate.store.tables import TokenRow, UserRow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(UserRow)) or 0

    def add(self, name: str, *, is_admin: bool, at: datetime) -> UserRow:
        row = UserRow(name=name, is_admin=is_admin, created_at=at)
        self.session.add(row)
        self.session.flush()
        return row

    def add_token(self, user: UserRow, token: str, *, label: str, at: datetime) -> None:
        self.session.add(
            TokenRow(token_hash=hash_token(token), user_id=user.id, label=label, created_at=at)
        )
        self.session.flush()

    def by_token(self, token: str) -> UserRow | None:
        query = (
            select(UserRow)
            .join(TokenRow, TokenRow.user_id == UserRow.id)
            .where(TokenRow.token_hash == hash_token(token))
        )
        return self.session.scalars(query).first()
