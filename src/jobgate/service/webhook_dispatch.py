"""The webhook dispatcher: turns the event log into signed POSTs.

One per store, like the engine (its own lease). Each round, in one transaction,
it writes the outcomes of the POSTs that finished, makes delivery rows for the
events after each webhook's `last_seq`, and picks the deliveries that are due;
then it sends those on a small thread pool and goes on without waiting for them.
Everything it knows is in the store, so after a crash or a take-over the next
holder resumes from there; a POST whose outcome was not written is sent again
(at least once: receivers tell repeats apart by `X-Jobgate-Delivery`).

Order per job: only the earliest pending delivery of a (webhook, job) is ever
due, so a later event of a job waits until the earlier one was delivered or was
given up (`failed` after `webhook_max_attempts`); other jobs go on meanwhile.

The log is read up to a frontier below which no event can still appear. On
PostgreSQL a transaction may commit seq 11 before another commits seq 10, so a
gap in the visible seqs holds the frontier until it fills, or until the event
after it has been seen for `SETTLE_SECONDS` (a rolled-back insert, or the events
of a deleted job, leave gaps for good). SQLite commits writers one by one, in
seq order: there a gap never fills and is passed at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine

from jobgate import __version__
from jobgate.config import Settings
from jobgate.service.engine import process_identity, process_is_gone
from jobgate.service.jobs import utcnow
from jobgate.store import make_session_factory
from jobgate.store.leases import LeaseRepository
from jobgate.store.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    Attempt,
    DeliveryStatus,
    DueDelivery,
    WebhookRepository,
)

log = logging.getLogger(__name__)

LEASE = "webhooks"
LEASE_TTL = timedelta(seconds=15)
SETTLE_SECONDS = 10.0
# Events read per round: for the frontier, and for each webhook.
SCAN_LIMIT = 1000
SENDERS = 16
# With no webhook, how often the store is asked whether one was registered
# through another process (this one's registrations say so at once).
NONE_RECHECK = 2.0
# Deliveries handed to the senders at most: more than there are senders, so
# that a sender that is done takes the next one without waiting for a round.
MAX_IN_FLIGHT = 4 * SENDERS
GATHER_SECONDS = 0.005
# Bytes of a failing receiver's answer kept in `last_error`.
ERROR_SNIPPET = 200

SIGNATURE_HEADER = "X-Jobgate-Signature"
DELIVERY_HEADER = "X-Jobgate-Delivery"
EVENT_HEADER = "X-Jobgate-Event"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after `attempts` failed ones: base, 2 x base,
    4 x base, ... never more than `cap`."""
    return float(min(cap, base * 2 ** min(attempts - 1, 62)))


def body_of(delivery_id: int, payload: dict[str, Any]) -> bytes:
    return json.dumps({"delivery_id": delivery_id, **payload}, separators=(",", ":"),
                      sort_keys=True).encode()


@dataclass(frozen=True)
class Outcome:
    at: datetime
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDispatcher:
    def __init__(self, db: Engine, settings: Settings, *, interval: float = 0.5) -> None:
        # Sessions of its own: its commits must not ring the gateway's bus (nor
        # wake this dispatcher itself) every round.
        self.sessions = make_session_factory(db)
        self.settings = settings
        self.interval = interval
        self.settle = 0.0 if db.dialect.name == "sqlite" else SETTLE_SECONDS
        self.owner = f"{process_identity(os.getpid())}:{uuid.uuid4().hex[:8]}"
        self._lease_until: datetime | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frontier: int | None = None
        self._scanned_at = float("-inf")
        # Whether any webhook exists, and when that was last asked: with none,
        # a commit must not cost a transaction here (it would queue for the
        # store's write lock beside the engine and the submitters).
        self._any_webhook = True
        self._any_asked_at = float("-inf")
        self._first_seen: dict[int, float] = {}
        self._in_flight: dict[Future[Outcome], DueDelivery] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._client: httpx.Client | None = None

    def webhook_added(self) -> None:
        """A webhook was registered through this process: look at once."""
        self._any_webhook = True
        self.wake()

    def wake(self) -> None:
        """Look at the log soon (called after commits of this process). With no
        webhook, nothing to do: the thread asks the store again on its own."""
        if self._any_webhook or self._in_flight:
            self._wake.set()

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="jobgate-webhook")
        self._client = httpx.Client(
            timeout=self.settings.webhook_timeout, follow_redirects=False,
            headers={"User-Agent": f"jobgate/{__version__}"})
        self._thread = threading.Thread(target=self._run, name="jobgate-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.hold_lease():
                    self.run_once()
                else:
                    self._frontier = None  # the holder moves the watermarks meanwhile
            except Exception:  # keep dispatching; the next round retries
                log.exception("webhook round failed")
            self._pause()
        self._shut_down()

    def _pause(self) -> None:
        """Until a POST ends, a commit rings or `interval` passes. (The wake flag
        is cleared by the round that scans the log.)"""
        if not self._in_flight:
            self._wake.wait(self.interval)
            return
        done, busy = wait(list(self._in_flight), timeout=self.interval,
                          return_when=FIRST_COMPLETED)
        if done and busy:
            # A moment more gathers the POSTs ending about now into one round:
            # a round per POST would spend itself on transactions.
            wait(busy, timeout=GATHER_SECONDS)

    def _shut_down(self) -> None:
        # What is still on its way stays pending in the store: sent again later.
        if self._client is not None:
            self._client.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._lease_until is not None:
            try:
                with self.sessions.begin() as session:
                    LeaseRepository(session).release(LEASE, self.owner)
            except Exception:  # the lease simply expires
                log.exception("could not release the webhook lease")

    def hold_lease(self) -> bool:
        """Take or renew the dispatcher's lease; renewing only when half of it is used."""
        now = utcnow()
        if self._lease_until is not None and now < self._lease_until - LEASE_TTL / 2:
            return True
        with self.sessions.begin() as session:
            held = LeaseRepository(session).acquire(
                LEASE, self.owner, now, LEASE_TTL, holder_is_dead=process_is_gone)
        self._lease_until = now + LEASE_TTL if held else None
        return held

    def run_once(self) -> None:
        """Record what finished, make deliveries of new events, send what is due."""
        if not self._in_flight and not self._webhooks_exist():
            self._wake.clear()
            return
        done = {future: item for future, item in self._in_flight.items() if future.done()}
        with self.sessions.begin() as session:
            repo = WebhookRepository(session)
            repo.record([self._attempt(item, _result(future)) for future, item in done.items()])
            # The log is read when a commit rang, or every `interval` (for other
            # processes' commits), not after every POST.
            if self._wake.is_set() or time.monotonic() - self._scanned_at >= self.interval:
                self._wake.clear()
                self._scanned_at = time.monotonic()
                if self._enqueue(repo):
                    self._wake.set()  # more to read: next round
            busy = {item.id for future, item in self._in_flight.items() if future not in done}
            room = MAX_IN_FLIGHT - len(busy)
            due = repo.due(utcnow(), room, busy) if room > 0 else []
        # Only once written: should the commit fail, the next round writes them.
        for future in done:
            del self._in_flight[future]
        assert self._pool is not None, "start() first"
        for item in due:
            self._in_flight[self._pool.submit(self._post, item)] = item

    def _webhooks_exist(self) -> bool:
        """Asked of the store at most once an interval while there are none."""
        moment = time.monotonic()
        if not self._any_webhook and moment - self._any_asked_at >= max(self.interval,
                                                                         NONE_RECHECK):
            self._any_asked_at = moment
            with self.sessions() as session:
                self._any_webhook = WebhookRepository(session).any()
        return self._any_webhook

    def _enqueue(self, repo: WebhookRepository) -> bool:
        """Make the deliveries of the events past the watermarks; True when a
        limit cut this short."""
        subscribers = repo.subscribers()
        self._any_webhook, self._any_asked_at = bool(subscribers), time.monotonic()
        if not subscribers:
            self._frontier = None
            return False
        if self._frontier is None:
            self._frontier = min(sub.last_seq for sub in subscribers)
        seqs = repo.seqs_after(self._frontier, SCAN_LIMIT)
        self._advance(seqs)
        more = len(seqs) == SCAN_LIMIT and self._frontier == seqs[-1]
        now = utcnow()
        for sub in subscribers:
            if sub.last_seq < self._frontier:
                more |= repo.enqueue(sub, self._frontier, SCAN_LIMIT, now) == SCAN_LIMIT
        return more

    def _advance(self, seqs: list[int]) -> None:
        """Move the frontier over the seqs that are visible and over the gaps
        that have settled (see the module's docstring)."""
        assert self._frontier is not None
        now = time.monotonic()
        for seq in seqs:
            self._first_seen.setdefault(seq, now)
        frontier = self._frontier
        for seq in seqs:
            if seq != frontier + 1 and now - self._first_seen[seq] < self.settle:
                break
            frontier = seq
        self._frontier = frontier
        self._first_seen = {s: t for s, t in self._first_seen.items() if s > frontier}

    def _attempt(self, item: DueDelivery, outcome: Outcome) -> Attempt:
        attempts = item.attempts + 1
        status: DeliveryStatus = PENDING
        next_at = outcome.at
        if outcome.ok:
            status = DELIVERED
        elif attempts >= self.settings.webhook_max_attempts:
            status = FAILED
        else:
            delay = backoff_delay(attempts, self.settings.webhook_backoff,
                                  self.settings.webhook_backoff_max)
            next_at = outcome.at + timedelta(seconds=delay)
        return Attempt(
            delivery_id=item.id, status=status, attempts=attempts, at=outcome.at,
            status_code=outcome.status_code,
            error=outcome.error[:512] if outcome.error else None,
            next_attempt_at=next_at, delivered_at=outcome.at if outcome.ok else None)

    def _post(self, item: DueDelivery) -> Outcome:
        """One try; runs on the pool. Never raises: a failure is an outcome."""
        assert self._client is not None
        body = body_of(item.id, item.payload)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(item.secret, body),
            DELIVERY_HEADER: str(item.id),
            EVENT_HEADER: f"job.{item.payload['event']['to_state']}",
        }
        try:
            with self._client.stream("POST", item.url, content=body, headers=headers) as answer:
                # Read (a little): a connection is reused only once its answer was read.
                snippet = _read_some(answer, ERROR_SNIPPET)
                if 200 <= answer.status_code < 300:
                    return Outcome(utcnow(), answer.status_code, None)
                return Outcome(utcnow(), answer.status_code,
                               f"HTTP {answer.status_code}: {snippet}".strip())
        except httpx.TimeoutException:
            return Outcome(utcnow(), None,
                           f"no answer within {self.settings.webhook_timeout:g} s")
        except (httpx.HTTPError, OSError) as exc:
            return Outcome(utcnow(), None, f"{type(exc).__name__}: {exc}")


def _read_some(answer: httpx.Response, limit: int) -> str:
    data = b""
    try:
        for chunk in answer.iter_bytes():
            data += chunk
            if len(data) >= limit:
                break
    except httpx.HTTPError:
        pass
    return data[:limit].decode(errors="replace")


def _result(future: Future[Outcome]) -> Outcome:
    try:
        return future.result()
    except Exception as exc:  # a bug or a cancelled send: retried like any failure
        return Outcome(utcnow(), None, f"{type(exc).__name__}: {exc}")
