"""Idempotent creation: the same Idempotency-Key from the same user within a day
returns the first answer and creates nothing more."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.errors import InvalidSpecError
from jobgate.service.auth import Principal
from jobgate.service.jobs import JobService, utcnow
from jobgate.store.idempotency import IdempotencyRepository, KeyTakenError

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 256

Answer = tuple[int, dict[str, Any]]


def request_hash(spec: JobSpec, content_digest: str = "") -> str:
    """The same request, however its JSON was laid out, hashes the same;
    `content_digest` stands for what else it carried (uploaded files)."""
    canonical = json.dumps(spec.model_dump(mode="json", exclude_unset=True), sort_keys=True)
    if content_digest:
        canonical += "\n" + content_digest
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotentSubmit:
    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs

    def submit(
        self, spec: JobSpec, user: Principal, key: str,
        render: Callable[[JobRecord], dict[str, Any]], *, content_digest: str = "",
        on_record: Callable[[Session, JobRecord], None] | None = None,
    ) -> Answer:
        """(201, the job) the first time; the stored answer on a repeat.

        `content_digest` is hashed with the spec (files sent with it); `on_record`
        runs in the job's transaction, as with `JobService.submit`.

        Raises:
            InvalidSpecError: a bad key, or a key used before with another request;
                and whatever `JobService.submit` raises.
        """
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidSpecError("Idempotency-Key", key[:40],
                                   f"must be 1 to {MAX_KEY_LENGTH} characters")
        digest = request_hash(spec, content_digest)
        stored = self._stored(user, key, digest)
        if stored is not None:
            return stored

        def remember(session: Session, record: JobRecord) -> None:
            # The key first: a request that lost the race for it stops here,
            # before it has placed anything (files) that it would have to take back.
            IdempotencyRepository(session).remember(
                user.name, key, digest, 201, render(record), utcnow())
            if on_record is not None:
                on_record(session, record)

        try:
            record = self.jobs.submit(spec, user, on_record=remember)
        except KeyTakenError:
            # The same key won a race in another request: its job stands, ours
            # was rolled back with the key.
            stored = self._stored(user, key, digest)
            if stored is None:
                raise
            return stored
        return 201, render(record)

    def _stored(self, user: Principal, key: str, digest: str) -> Answer | None:
        with self.jobs.sessions.begin() as session:
            keys = IdempotencyRepository(session)
            row = keys.find(user.name, key)
            if row is None:
                return None
            if utcnow() - row.created_at > KEY_LIFETIME:
                keys.forget(row)
                return None
            if row.request_hash != digest:
                raise InvalidSpecError("Idempotency-Key", key,
                                       "was used with a different request; use a new key")
            return row.status_code, row.response
