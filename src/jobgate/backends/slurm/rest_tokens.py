"""Where the REST transport's JWT comes from: given in the configuration, read
from a file (again whenever it changes), or printed by a command such as
`scontrol token lifespan=3600` (run again before the token expires, and when
slurmrestd refuses it). Slurm's tokens are HS256 JWTs whose claims name their
user (`sun`) and expiry (`exp`); they are read here, never verified (only
slurmctld has the key)."""

from __future__ import annotations

import base64
import json
import logging
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from jobgate.backends.slurm.transport import _UNREACHABLE, SlurmRefused, SlurmUnreachable
from jobgate.config import ClusterConfig
from jobgate.errors import BackendError

log = logging.getLogger(__name__)


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (exp, iat, sun: Slurm's user name), unverified: only
    to know when to fetch a new one and whose it is. {} when unreadable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def read_token(text: str, where: str) -> str:
    """The token in `scontrol token`'s answer (`SLURM_JWT=...`) or a bare one.

    Raises:
        BackendError: nothing that looks like a token.
    """
    for word in reversed(text.split()):
        token = word.removeprefix("SLURM_JWT=").strip("\"'")
        if token:
            return token
    raise BackendError(f"{where} gave no token")


class TokenSource(Protocol):
    def token(self) -> str:
        """A token to send now."""

    def renew(self) -> bool:
        """Fetch the token again after slurmrestd refused it; False when that
        cannot give another one."""


def _refuse_expired(token: str, where: str, now: float) -> str:
    expires = jwt_claims(token).get("exp")
    if isinstance(expires, int) and expires <= now:
        raise SlurmRefused(f"the slurmrestd token from {where} expired at "
                           f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(expires))} UTC: "
                           "give a fresh one (or use rest_token_command to have one made)")
    return token


class StaticToken:
    """A token written in the configuration."""

    def __init__(self, token: str, clock: Callable[[], float] = time.time) -> None:
        self._token = read_token(token, "rest_token")
        self.clock = clock

    def token(self) -> str:
        return _refuse_expired(self._token, "rest_token", self.clock())

    def renew(self) -> bool:
        return False


class FileToken:
    """A token kept in a file (rotated by something else): read again whenever
    the file changes."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path).expanduser()
        self.clock = clock
        self._seen: tuple[int, int] | None = None
        self._token = ""
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            try:
                info = self.path.stat()
                if (info.st_mtime_ns, info.st_size) != self._seen:
                    self._token = read_token(self.path.read_text(), str(self.path))
                    self._seen = (info.st_mtime_ns, info.st_size)
            except OSError as exc:
                raise BackendError(f"cannot read the slurmrestd token file {self.path}: "
                                   f"{exc.strerror}") from exc
            return _refuse_expired(self._token, str(self.path), self.clock())

    def renew(self) -> bool:
        with self._lock:
            before, self._seen = self._token, None
        return self.token() != before


class CommandToken:
    """A token printed by a command (`scontrol token lifespan=3600`), run again
    when a fifth of the token's life (at least 30 s) is left, or when refused."""

    def __init__(self, command: str, *, timeout: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise BackendError("rest_token_command is empty")
        self.timeout = timeout
        self.clock = clock
        self.runs = 0
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def renew(self) -> bool:
        with self._lock:
            self._fetch()
        return True

    def _fetch(self) -> None:
        what = " ".join(self.argv)
        try:
            done = subprocess.run(self.argv, capture_output=True, text=True, check=False,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise SlurmUnreachable(f"rest_token_command `{what}` did not answer within "
                                   f"{self.timeout:g}s") from exc
        except OSError as exc:
            raise BackendError(f"rest_token_command `{what}` cannot run: {exc}") from exc
        self.runs += 1
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().replace("\n", " ")[:300]
            error = SlurmUnreachable if any(w in message.lower() for w in _UNREACHABLE) \
                else SlurmRefused
            raise error(f"rest_token_command `{what}` failed ({done.returncode}): {message}")
        token = read_token(done.stdout, f"rest_token_command `{what}`")
        claims = jwt_claims(token)
        now = self.clock()
        expires, issued = claims.get("exp"), claims.get("iat")
        if isinstance(expires, int):
            life = expires - issued if isinstance(issued, int) else 300
            self._renew_at = expires - max(30.0, life / 5)
        else:
            self._renew_at = float("inf")  # a token without expiry
        if self._renew_at <= now:
            log.warning("rest_token_command gives tokens that expire within 30 s: "
                        "each request runs it again (ask for a longer lifespan)")
        self._token = token


def token_source(config: ClusterConfig) -> TokenSource:
    """The token source a cluster's configuration names (exactly one, checked there)."""
    if config.rest_token_command:
        return CommandToken(config.rest_token_command)
    if config.rest_token_file:
        return FileToken(config.rest_token_file)
    if config.rest_token:
        return StaticToken(config.rest_token)
    raise BackendError("transport rest: no token source configured")
