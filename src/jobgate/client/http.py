"""The request plumbing `Client` stands on: errors, retries with backoff, streams."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import httpx

from jobgate.client.config import default_token_path, load_config
from jobgate.client.errors import UnreachableError, error_from_response
from jobgate.client.retry import RetryPolicy
from jobgate.errors import AuthenticationError, JobgateError

__all__ = ["HttpClient", "headers_for", "translate_transport_error"]


def headers_for(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "jobgate-client"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def translate_transport_error(url: str, exc: httpx.TransportError) -> UnreachableError:
    if isinstance(exc, httpx.TimeoutException):
        return UnreachableError(f"no answer from jobgate at {url} in time ({type(exc).__name__})")
    return UnreachableError(f"cannot reach jobgate at {url}: {exc}")


def explain_missing_token(error: JobgateError, has_token: bool) -> JobgateError:
    if isinstance(error, AuthenticationError) and not has_token:
        # Say where we looked: the usual cause is a JOBGATE_HOME elsewhere.
        error.message = (
            f"{error.message}; no token found: pass --token, set JOBGATE_TOKEN, write "
            f"token = \"...\" in ~/.config/jobgate/config.toml, or point JOBGATE_HOME "
            f"at the gateway's home (no {default_token_path()})"
        )
        error.args = (error.message,)
    return error


class HttpClient:
    """A connection to one gateway: the settings, the httpx client and `_request`."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        auto_update: bool = True,
        update_cache_time: float = 5.0,
        limits: httpx.Limits | None = None,
    ) -> None:
        config = load_config(url, token)
        self.url = config.url
        self.retry = RetryPolicy(retries=config.retries if retries is None else retries)
        self.auto_update = auto_update
        self.update_cache_time = update_cache_time
        self._has_token = bool(config.token)
        self._http = httpx.Client(
            base_url=self.url, headers=headers_for(config.token), transport=transport,
            timeout=config.timeout if timeout is None else timeout,
            limits=limits if limits is not None else httpx.Limits(
                max_connections=100, max_keepalive_connections=20),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        self._http.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise JobgateError(f"unexpected answer from {response.request.url}: not JSON") \
                from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.get("headers") or {}
        keyed = "Idempotency-Key" in headers
        attempt = 0
        while True:
            try:
                return self._once(method, path, **kwargs)
            except (httpx.TransportError, JobgateError) as exc:
                if not self.retry.should_retry(attempt, method, keyed, exc.__cause__
                                               if isinstance(exc, UnreachableError)
                                               and exc.__cause__ is not None else exc):
                    raise
                time.sleep(self.retry.delay(attempt, exc))
                attempt += 1
                _rewind(kwargs)

    def _once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise translate_transport_error(self.url, exc) from exc
        if response.is_error:
            raise explain_missing_token(error_from_response(response), self._has_token)
        return response

    @contextmanager
    def _stream(self, path: str, params: dict[str, Any]) -> Iterator[httpx.Response]:
        """One streamed GET (no read timeout: a follow may wait long for a line)."""
        try:
            with self._http.stream("GET", path, params=params,
                                   timeout=httpx.Timeout(30.0, read=None)) as answer:
                if answer.is_error:
                    answer.read()
                    raise explain_missing_token(error_from_response(answer), self._has_token)
                yield answer
        except httpx.TransportError as exc:
            raise translate_transport_error(self.url, exc) from exc


def _rewind(kwargs: dict[str, Any]) -> None:
    """Files sent with a request are read again from the start on a retry."""
    for _field, value in kwargs.get("files") or ():
        handle = value[1] if isinstance(value, tuple) else value
        seek = getattr(handle, "seek", None)
        if seek is not None:
            seek(0)
