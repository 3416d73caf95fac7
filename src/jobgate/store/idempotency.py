"""Stored answers of create requests that carried an Idempotency-Key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jobgate.errors import ConflictError
from jobgate.store.tables import IdempotencyKeyRow


class KeyTakenError(ConflictError):
    """An Idempotency-Key was stored by a concurrent request."""


class IdempotencyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, user_name: str, key: str) -> IdempotencyKeyRow | None:
        return self.session.get(IdempotencyKeyRow, (user_name, key))

    def forget(self, row: IdempotencyKeyRow) -> None:
        self.session.delete(row)
        self.session.flush()

    def remember(
        self, user_name: str, key: str, request_hash: str, status_code: int,
        response: dict[str, Any], at: datetime,
    ) -> None:
        """Store an answer.

        Raises:
            KeyTakenError: another transaction stored this key first (the caller's
                transaction is spoiled and must roll back).
        """
        self.session.add(IdempotencyKeyRow(
            user_name=user_name, key=key, request_hash=request_hash, status_code=status_code,
            response=response, created_at=at,
        ))
        try:
            self.session.flush()
        except IntegrityError as exc:
            raise KeyTakenError(f"idempotency key {key!r} is taken") from exc
