"""Users and bearer tokens; the first start creates `admin` and its token file."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from jobgate.errors import AuthenticationError
from jobgate.store.users import UserRepository


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    name: str
    is_admin: bool


class AuthService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def authenticate(self, token: str | None) -> Principal:
        """The user a bearer token belongs to.

        Raises:
            AuthenticationError: no token, or one that matches no user.
        """
        if not token:
            raise AuthenticationError(
                "missing bearer token: send 'Authorization: Bearer <token>'"
            )
        with self.sessions() as session:
            user = UserRepository(session).by_token(token)
            if user is None:
                raise AuthenticationError("invalid token")
            return Principal(name=user.name, is_admin=user.is_admin)

    def ensure_admin(self, token_path: Path) -> None:
        """On a store with no users, create `admin` and write its token (mode 0600)."""
        with self.sessions.begin() as session:
            users = UserRepository(session)
            if users.count():
                return
            token = secrets.token_urlsafe(32)
            now = datetime.now(UTC)
            admin = users.add("admin", is_admin=True, at=now)
            users.add_token(admin, token, label="created at first start", at=now)
            # Written before the commit: should writing fail, no user exists
            # without a token anyone can read.
            write_secret(token_path, token + "\n")


def write_secret(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.replace(tmp, path)
