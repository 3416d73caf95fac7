"""Where the SDK and the CLI find the gateway and the token when none is given.

In order: the arguments, `$JOBGATE_URL` / `$JOBGATE_TOKEN`, the user's config file
(`$JOBGATE_CLIENT_CONFIG`, else `$XDG_CONFIG_HOME/jobgate/config.toml`, else
`~/.config/jobgate/config.toml`), and last the admin token file of
`$JOBGATE_HOME` (default ./var), which is what a gateway started here writes.

The config file is TOML with top-level keys::

    url = "https://jobs.example.org"
    token = "jg_..."
    timeout = 30      # seconds per request
    retries = 3       # extra tries of a transient failure
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobgate.errors import JobgateError

__all__ = [
    "DEFAULT_URL",
    "ClientConfig",
    "config_path",
    "default_token",
    "default_token_path",
    "load_config",
]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class ClientConfig:
    """The connection settings a client starts with."""

    url: str = DEFAULT_URL
    token: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES


def config_path() -> Path:
    """The user's config file (it need not exist)."""
    explicit = os.environ.get("JOBGATE_CLIENT_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "jobgate" / "config.toml"


def default_token_path() -> Path:
    """The admin token file of `$JOBGATE_HOME` (default ./var)."""
    return Path(os.environ.get("JOBGATE_HOME") or "var").expanduser().resolve() / "admin.token"


def _read_file() -> dict[str, Any]:
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise JobgateError(f"cannot read the config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JobgateError(f"the config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"url", "token", "timeout", "retries"})
    if unknown:
        raise JobgateError(f"the config file {path} has unknown keys {unknown}; "
                           "allowed: url, token, timeout, retries")
    return data


def default_token() -> str | None:
    """`$JOBGATE_TOKEN`, else the config file's token, else `$JOBGATE_HOME/admin.token`.

    Raises:
        JobgateError: the config file exists but cannot be read or parsed.
    """
    return load_config().token


def load_config(url: str | None = None, token: str | None = None) -> ClientConfig:
    """The settings for a client: arguments first, then environment, config file,
    and the local gateway's admin token.

    Raises:
        JobgateError: the config file exists but cannot be read, parsed, or has
            a bad value (the message names the file and the key).
    """
    data = _read_file()
    url = url or os.environ.get("JOBGATE_URL") or data.get("url") or DEFAULT_URL
    if token is None:
        token = os.environ.get("JOBGATE_TOKEN") or data.get("token")
    if token is None:
        try:
            token = default_token_path().read_text(encoding="utf-8").strip() or None
        except OSError:
            token = None
    try:
        timeout = float(data.get("timeout", DEFAULT_TIMEOUT))
        retries = int(data.get("retries", DEFAULT_RETRIES))
    except (TypeError, ValueError) as exc:
        raise JobgateError(f"the config file {config_path()}: timeout and retries must "
                           f"be numbers ({exc})") from exc
    return ClientConfig(url=str(url).rstrip("/"),
                        token=token.strip() if isinstance(token, str) else None,
                        timeout=timeout, retries=max(0, retries))
