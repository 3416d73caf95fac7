"""Who is calling: bearer tokens (hashed, expiring, revocable), service accounts
acting on behalf of users (X-On-Behalf-Of), and the first start's `admin`."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from jobgate.errors import AuthenticationError, PermissionDeniedError
from jobgate.service.throttle import AuthThrottle
from jobgate.store.projects import ProjectRepository
from jobgate.store.users import TokenHolder, UserRepository, hash_token, token_holder

MEMBER = "member"
MANAGER = "manager"
# last_used_at is written at most this often per token: a write per request
# would queue every read behind SQLite's write lock.
TOUCH_EVERY = timedelta(seconds=60)
# Answers a process remembers at most (with a token cache); past that, the
# expired ones go, then all.
MAX_CACHED = 10_000


@dataclass(frozen=True, eq=False)
class Principal:
    """Who is calling: the user whose rights apply (for a service account acting
    on behalf of a user: that user, with `actor` the service account)."""

    name: str
    is_admin: bool
    roles: frozenset[str] = frozenset()
    # The user's projects: name -> "member" or "manager".
    projects: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # The service account acting for `name`; its reach is the projects above only.
    actor: str | None = None

    @property
    def scoped(self) -> bool:
        """Acting through a service account: only jobs of its projects count."""
        return self.actor is not None

    def has_role(self, role: str) -> bool:
        return self.is_admin or role in self.roles

    def may_see(self, owner: str, project: str | None) -> bool:
        """May see a job of `owner` in `project` (else: 404, never 403)."""
        if self.is_admin:
            return True
        if self.scoped and project not in self.projects:
            return False
        return owner == self.name or (project is not None and project in self.projects)

    def may_act(self, owner: str, project: str | None) -> bool:
        """May steer, change or delete it (a project member only reads)."""
        if not self.may_see(owner, project):
            return False
        return self.is_admin or owner == self.name or (
            project is not None and self.projects.get(project) == MANAGER)

    def describe(self) -> str:
        """For event reasons: `ana`, or `ana (via portal)`."""
        return f"{self.name} (via {self.actor})" if self.actor else self.name


class AuthService:
    """Bearer tokens to principals.

    With `cache_seconds` > 0 (`token_cache_seconds`; 0 by default), a process
    remembers each answer that long and reads no store for it: a token revoked,
    or a user disabled or moved between projects, is then still taken as it was
    for up to `cache_seconds` (`forget` drops what this process remembers). A
    token's expiry stays exact, and a failure is never remembered.
    """

    def __init__(self, sessions: sessionmaker[Session],
                 throttle: AuthThrottle | None = None, *, cache_seconds: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 readers: sessionmaker[Session] | None = None) -> None:
        self.sessions = sessions
        # Every request reads its token: on SQLite, not behind the write lock.
        self.readers = readers or sessions
        self.reader_engine: Engine = self.readers.kw["bind"]
        self.throttle = throttle or AuthThrottle(0, 60.0)
        self.cache_seconds = cache_seconds
        self.clock = clock
        # (token hash, on_behalf_of) -> (principal, until (clock), token expiry)
        self._cache: dict[tuple[str, str | None],
                          tuple[Principal, float, datetime | None]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str | None, *, on_behalf_of: str | None = None,
               address: str | None = None) -> Principal | None:
        """What `authenticate` answered for this token less than `cache_seconds`
        ago, or None (then ask `authenticate`). Reads no store.

        Raises:
            RateLimitedError: too many failed attempts from `address` lately.
        """
        if not token or self.cache_seconds <= 0:
            return None
        self.throttle.check(address)
        hit = self._cache.get((hash_token(token), on_behalf_of))
        if hit is None or hit[1] <= self.clock() or (
                hit[2] is not None and hit[2] <= datetime.now(UTC)):
            return None
        return hit[0]

    def forget(self) -> None:
        """Drop every answer this process remembers."""
        with self._lock:
            self._cache.clear()

    def authenticate(self, token: str | None, *, on_behalf_of: str | None = None,
                     address: str | None = None) -> Principal:
        """The principal a bearer token stands for. Without a cache (the
        default) a revoked or expired token fails on the very next request.

        Raises:
            AuthenticationError: no token, or one that is unknown, revoked,
                expired, or whose user is disabled.
            RateLimitedError: too many failed attempts from `address` lately.
            PermissionDeniedError: `on_behalf_of` names a user this token may
                not act for.
        """
        known = self.cached(token, on_behalf_of=on_behalf_of, address=address)
        if known is not None:
            return known
        principal, expires_at = self._look_up(token, on_behalf_of, address)
        if self.cache_seconds > 0 and token:
            self._remember((hash_token(token), on_behalf_of), principal, expires_at)
        return principal

    def _remember(self, key: tuple[str, str | None], principal: Principal,
                  expires_at: datetime | None) -> None:
        now = self.clock()
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
            self._cache[key] = (principal, now + self.cache_seconds, expires_at)

    def _look_up(self, token: str | None, on_behalf_of: str | None,
                 address: str | None) -> tuple[Principal, datetime | None]:
        """The principal, and when the token expires."""
        if not token:
            raise AuthenticationError(
                "missing bearer token: send 'Authorization: Bearer <token>'"
            )
        self.throttle.check(address)
        now = datetime.now(UTC)
        with self.reader_engine.connect() as connection:
            holder = token_holder(connection, token)
        if holder is None:
            self._failed(address, "invalid token")
        assert holder is not None
        if holder.revoked_at is not None:
            self._failed(address, "token revoked: ask for a new one")
        if holder.expires_at is not None and holder.expires_at <= now:
            self._failed(address, "token expired: ask for a new one")
        if not holder.active:
            self._failed(address, f"user {holder.user_name!r} is disabled")
        if holder.last_used_at is None or now - holder.last_used_at >= TOUCH_EVERY:
            self._touch(holder.token_hash, now)
        if on_behalf_of is None or (on_behalf_of == holder.user_name
                                    and holder.acts_for is None):
            return Principal(name=holder.user_name, is_admin=holder.is_admin,
                             roles=frozenset(holder.roles),
                             projects=MappingProxyType(holder.projects)), holder.expires_at
        return self._acting_for(holder, on_behalf_of), holder.expires_at

    def _acting_for(self, holder: TokenHolder, on_behalf_of: str) -> Principal:
        if holder.acts_for is None:
            raise PermissionDeniedError(
                f"this token of {holder.user_name!r} is not a service account's: it may not "
                "act on behalf of others (drop X-On-Behalf-Of)")
        with self.readers() as session:
            target = UserRepository(session).get(on_behalf_of)
            theirs = ProjectRepository(session).roles_of(target.id) \
                if target is not None and target.active else {}
        shared = {name: role for name, role in theirs.items() if name in holder.acts_for}
        if not shared:
            raise PermissionDeniedError(
                f"service account {holder.user_name!r} may act only for active users of "
                f"{', '.join(sorted(holder.acts_for)) or 'no project'}; "
                f"{on_behalf_of!r} is not one", details={"on_behalf_of": on_behalf_of})
        return Principal(name=on_behalf_of, is_admin=False,
                         projects=MappingProxyType(shared), actor=holder.user_name)

    def _touch(self, token_hash: str, now: datetime) -> None:
        with self.sessions.begin() as session:
            UserRepository(session).touch_token(token_hash, now)

    def _failed(self, address: str | None, message: str) -> None:
        self.throttle.failed(address)
        raise AuthenticationError(message)

    def ensure_admin(self, token_path: Path) -> None:
        """On a store with no users, create `admin` and write its token (mode 0600)."""
        with self.sessions.begin() as session:
            users = UserRepository(session)
            if users.count():
                return
            token = new_token()
            now = datetime.now(UTC)
            admin = users.add("admin", is_admin=True, at=now, display_name="Administrator")
            users.add_token(admin, token, label="created at first start", at=now)
            # Written before the commit: should writing fail, no user exists
            # without a token anyone can read.
            write_secret(token_path, token + "\n")


def new_token() -> str:
    """A new random API token (shown once; only its hash is stored)."""
    return "jg_" + secrets.token_urlsafe(32)


def write_secret(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.replace(tmp, path)
