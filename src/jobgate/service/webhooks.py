"""Webhooks: a user registers a URL and a secret; every event of the jobs that
user may see is POSTed there, signed (see `service.webhook_dispatch`)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from jobgate.config import Settings
from jobgate.errors import InvalidSpecError, NotFoundError
from jobgate.service.auth import Principal
from jobgate.service.jobs import MAX_PAGE, utcnow
from jobgate.store.jobs import decode_cursor, encode_cursor
from jobgate.store.tables import WebhookRow
from jobgate.store.webhooks import STATUSES, Delivery, Webhook, WebhookRepository

MAX_URL = 2048
MIN_SECRET, MAX_SECRET = 16, 256
MAX_DESCRIPTION = 256
INT64 = 2**63 - 1


class WebhookService:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        # Told after a webhook is registered (the dispatcher: look now).
        self.on_created: Callable[[], None] = lambda: None

    def create(self, user: Principal, url: str, secret: str | None = None,
               description: str = "") -> tuple[Webhook, str]:
        """Register a webhook for the caller; it gets the events from now on.
        Returns it with its secret (made here when none is given), which is
        never shown again.

        Raises:
            InvalidSpecError: a URL that is not http(s), a secret too short or
                too long, or the caller already has as many webhooks as allowed.
        """
        url = check_url(url)
        if secret is None:
            secret = secrets.token_urlsafe(32)
        else:
            if not MIN_SECRET <= len(secret) <= MAX_SECRET:
                raise InvalidSpecError("secret", f"<{len(secret)} characters>",
                                       f"must be {MIN_SECRET} to {MAX_SECRET} characters long")
            check_text("secret", secret, shown="<hidden>")
        check_text("description", description)
        if len(description) > MAX_DESCRIPTION:
            raise InvalidSpecError("description", description[:40] + "...",
                                   f"must be at most {MAX_DESCRIPTION} characters")
        limit = self.settings.webhooks_per_user
        with self.sessions.begin() as session:
            repo = WebhookRepository(session)
            count = repo.count_of(user.name)
            if count >= limit:
                raise InvalidSpecError(
                    "webhooks", count,
                    f"a user may have at most {limit} webhooks: delete one first")
            row = repo.add(user.name, url, secret, description, utcnow())
            [webhook] = repo.view([row])
        self.on_created()
        return webhook, secret

    def list_webhooks(self, user: Principal) -> list[Webhook]:
        """The caller's webhooks (an admin: everyone's), oldest first."""
        with self.sessions() as session:
            repo = WebhookRepository(session)
            return repo.view(repo.rows(None if user.is_admin else user.name))

    def get(self, webhook_id: int, user: Principal) -> Webhook:
        """Raises:
        NotFoundError: no such webhook, or not one the caller may see.
        """
        with self.sessions() as session:
            repo = WebhookRepository(session)
            [webhook] = repo.view([self._visible(repo, webhook_id, user)])
            return webhook

    def delete(self, webhook_id: int, user: Principal) -> None:
        """Remove a webhook and its deliveries; nothing more is sent to it.

        Raises:
            NotFoundError: no such webhook, or not one the caller may see.
        """
        with self.sessions.begin() as session:
            repo = WebhookRepository(session)
            repo.delete(self._visible(repo, webhook_id, user))

    def deliveries(
        self, webhook_id: int, user: Principal, *, status: str | None = None,
        job_id: int | None = None, limit: int = 100, cursor: str | None = None,
    ) -> tuple[list[Delivery], str | None]:
        """A page of a webhook's deliveries, newest event first, and the cursor
        of the next page (None at the end).

        Raises:
            NotFoundError: no such webhook, or not one the caller may see.
            InvalidSpecError: a bad status, limit or cursor.
        """
        if status is not None and status not in STATUSES:
            raise InvalidSpecError("status", status, f"must be one of {', '.join(STATUSES)}")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidSpecError("limit", limit, f"must be between 1 and {MAX_PAGE}")
        before = decode_cursor(cursor) if cursor else None
        if before is not None and not 0 <= before <= INT64:
            raise InvalidSpecError("cursor", cursor, "not a cursor this server gave out")
        with self.sessions() as session:
            repo = WebhookRepository(session)
            self._visible(repo, webhook_id, user)
            found = repo.deliveries(webhook_id, limit=limit + 1, before_seq=before,
                                    status=status, job_id=job_id)
        page = found[:limit]
        return page, encode_cursor(page[-1].event_seq) if len(found) > limit else None

    @staticmethod
    def _visible(repo: WebhookRepository, webhook_id: int, user: Principal) -> WebhookRow:
        row = repo.get(webhook_id)
        if row is None or not (user.is_admin or row.user_name == user.name):
            raise NotFoundError(f"no webhook {webhook_id}")
        return row


def check_text(field: str, value: str, *, shown: str | None = None) -> None:
    """Printable text the store can keep (no control characters, valid UTF-8).

    Raises:
        InvalidSpecError: naming the field.
    """
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidSpecError(
            field, shown or value[:80].encode(errors="backslashreplace").decode(),
            "must be valid Unicode text") from exc
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidSpecError(field, shown or value[:80], "must not contain control characters")


def check_url(url: str) -> str:
    """An absolute http or https URL with a host.

    Raises:
        InvalidSpecError: naming what is wrong with it.
    """
    check_text("url", url)
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise InvalidSpecError("url", url[:80], f"give a URL of 1 to {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidSpecError("url", url[:80], "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError as exc:
        raise InvalidSpecError("url", url[:80], f"not a valid URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidSpecError("url", url[:80], "must start with http:// or https://")
    if not parts.hostname:
        raise InvalidSpecError("url", url[:80], "must name a host (http://host[:port]/path)")
    return url
