"""The registry: jobs that schedulers outside jobgate run, upserted in batches.

Each record names its job by (cluster, job_id) or (cluster, group_id,
group_index): a record that matches a registry job overwrites it, otherwise a
new job is made. Every change writes one event in the same transaction; a
record that changes nothing writes none. A bad record is rejected alone, the
others still land.

State rule: the registry is the scheduler's truth for jobs jobgate does not
run, so a record may move a job to any state, even out of a final one (Slurm
requeues jobs; accounting gets corrected). Such a move is never silent: its
event says so (`data.against_ledger_rules`), a final -> active move counts as a
requeue (`requeue_count` + 1, as Slurm counts it), and the log gets a warning.
What the registry never does is forget: a job no record mentions any more keeps
its last state for good.

The engine never sees these jobs (its queries select `source = 'gateway'`), and
every verb on them is refused (VerbNotSupportedError): jobgate cannot steer a
job another scheduler runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jobgate.domain.registry import ledger_columns, parse_record
from jobgate.domain.states import JobState, can_transition
from jobgate.errors import (
    ConflictError,
    InvalidSpecError,
    PermissionDeniedError,
    TooLargeError,
)
from jobgate.service.auth import Principal
from jobgate.service.jobs import utcnow
from jobgate.store.registry import NAMES, RegistryRepository, Stored

log = logging.getLogger(__name__)

Status = Literal["created", "updated", "unchanged", "rejected"]
# How often a batch is tried again when a concurrent one got in its way
# (deadlock), and how often a record whose key another batch took first.
ATTEMPTS = 3
ROUNDS = 3


class Outcome(NamedTuple):
    """What became of one record."""

    position: int  # in the batch, from 0
    status: Status
    job_id: int | None = None
    field: str | None = None
    reason: str | None = None


def may_ingest(user: Principal) -> bool:
    """Who may push records into the registry: the one place that decides.

    Admins, and users given the `ingest` role.
    """
    return user.has_role("ingest")


class RegistryService:
    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 1000) -> None:
        self.sessions = sessions
        self.max_batch = max_batch

    def ingest(self, records: Sequence[Any], user: Principal) -> list[Outcome]:
        """Upsert a batch of records (plain JSON objects) in one transaction.

        Raises:
            PermissionDeniedError: the caller may not push into the registry.
            TooLargeError: more records than `registry_max_batch`.
            InvalidSpecError: no records at all.
            ConflictError: concurrent batches kept colliding (send it again).
        """
        if not may_ingest(user):
            raise PermissionDeniedError(
                "pushing jobs into the registry needs the `ingest` role (or an admin)")
        if len(records) > self.max_batch:
            raise TooLargeError("registry_max_batch", self.max_batch,
                                f"a batch of {len(records)} records")
        if not records:
            raise InvalidSpecError("records", 0, f"send 1 to {self.max_batch} records")
        now = utcnow()
        rejected: dict[int, Outcome] = {}
        valid: list[tuple[int, dict[str, Any]]] = []
        for index, data in enumerate(records):
            try:
                columns = ledger_columns(parse_record(data))
            except InvalidSpecError as exc:
                rejected[index] = Outcome(index, "rejected", field=exc.field,
                                          reason=exc.message)
            else:
                valid.append((index, columns))
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.sessions.begin() as session:
                    done = _Batch(RegistryRepository(session), now).run(valid)
                break
            except (IntegrityError, DBAPIError) as exc:
                # A concurrent batch made or locked the same jobs (unique key,
                # deadlock): this one has rolled back and runs again.
                if attempt == ATTEMPTS or not _is_contention(exc):
                    if _is_contention(exc):
                        raise ConflictError("registry batch kept colliding with concurrent "
                                            "batches; send it again") from exc
                    raise
                log.info("registry batch collided (attempt %d): %s", attempt, exc.orig)
        return [rejected.get(index) or done[index] for index in range(len(records))]


class _Batch:
    """One transaction's worth of records, in rounds of distinct keys."""

    def __init__(self, repo: RegistryRepository, now: datetime) -> None:
        self.repo = repo
        self.now = now
        self.outcomes: dict[int, Outcome] = {}

    def run(self, items: list[tuple[int, dict[str, Any]]]) -> dict[int, Outcome]:
        pending = items
        while pending:
            this_round, pending = _distinct_keys(pending)
            # Optimistic first: no row locks (they cost a write each). Records a
            # concurrent batch got in the way of go again, their jobs locked.
            this_round = self._round(this_round, lock=False)
            for _ in range(ROUNDS):
                if not this_round:
                    break
                this_round = self._round(this_round, lock=True)
            for index, _columns in this_round:
                self.outcomes[index] = Outcome(
                    index, "rejected", reason="a concurrent batch kept making this job; "
                                              "send the record again")
        return self.outcomes

    def _round(self, items: list[tuple[int, dict[str, Any]]], *, lock: bool
               ) -> list[tuple[int, dict[str, Any]]]:
        """Upsert records of distinct keys; returns those another batch got in the
        way of (a job it made or wrote first), to try again."""
        stored = self.repo.find([_key(columns) for _, columns in items], lock=lock)
        by_native = {(s.columns["cluster"], s.columns["native_id"]): s for s in stored
                     if s.columns["native_id"] is not None}
        by_array = {(s.columns["cluster"], s.columns["array_job_id"],
                     s.columns["array_task_id"]): s for s in stored
                    if s.columns["array_job_id"] is not None}
        new: list[tuple[int, dict[str, Any]]] = []
        changes: list[tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        for index, columns in items:
            native = by_native.get((columns["cluster"], columns["native_id"]))
            array = by_array.get((columns["cluster"], columns["array_job_id"],
                                  columns["array_task_id"]))
            if native is not None and array is not None and native.id != array.id:
                self.outcomes[index] = Outcome(
                    index, "rejected", field="job_id",
                    reason=f"job_id names ledger job {native.id} but group_id/group_index "
                           f"name ledger job {array.id}; fix one of them")
                continue
            match = native or array
            if match is None:
                new.append((index, columns))
                continue
            change = self._change(match, columns)
            if change is None:
                self.outcomes[index] = Outcome(index, "unchanged", match.id)
            else:
                changes.append((index, columns, *change))
        lost, events = self._insert(new)
        changes.sort(key=lambda change: change[2]["id"])  # rows locked in one order
        written = self.repo.update([row for _, _, row, _ in changes], self.now)
        for index, columns, row, event in changes:
            if row["id"] in written:
                self.outcomes[index] = Outcome(index, "updated", row["id"])
                events.append(event)
            else:
                lost.append((index, columns))
        self.repo.add_events(events, self.now)
        return lost

    def _change(self, job: Stored, columns: dict[str, Any]
                ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The row and event that overwrite `job` with `columns`; None when equal."""
        if columns["submit_time"] is None:
            columns = {**columns, "submit_time": job.columns["submit_time"]}
        changed = [name for name in NAMES if columns[name] != job.columns[name]]
        if not changed:
            return None
        old, new = JobState(job.columns["state"]), JobState(columns["state"])
        runs = job.requeue_count
        data: dict[str, Any] = {"source": "registry", "fields": changed}
        if old is not new:
            requeue = old.final and not new.final
            if requeue:
                runs += 1
            if not can_transition(old, new, requeue=requeue):
                data["against_ledger_rules"] = True
                log.warning("registry job %s: %s -> %s as its scheduler says (the ledger "
                            "would refuse this move for a job run here)", job.id, old, new)
            if requeue:
                data["requeued"] = True
        row = {"id": job.id, "seen": job.updated_at, **columns, "requeue_count": runs}
        event = {"job_id": job.id, "from_state": old.value, "to_state": new.value,
                 "reason": "registry: updated", "data": data}
        return row, event

    def _insert(self, new: list[tuple[int, dict[str, Any]]]
                ) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
        """Insert new jobs; returns the records whose key another batch took
        first, and the events of the jobs made."""
        rows = [{**columns, "submit_time": columns["submit_time"] or self.now}
                for _, columns in new]
        made = {}
        for job_id, cluster, native_id, array_job_id, array_task_id in self.repo.insert(
                rows, self.now):
            made[_identity(cluster, native_id, array_job_id, array_task_id)] = job_id
        lost, events = [], []
        for (index, columns), row in zip(new, rows, strict=True):
            job_id = made.get(_identity(columns["cluster"], columns["native_id"],
                                        columns["array_job_id"], columns["array_task_id"]))
            if job_id is None:
                lost.append((index, columns))
                continue
            self.outcomes[index] = Outcome(index, "created", job_id)
            events.append({"job_id": job_id, "from_state": None, "to_state": row["state"],
                           "reason": "registry: created", "data": {"source": "registry"}})
        return lost, events


def _key(columns: dict[str, Any]) -> dict[str, Any]:
    return {name: columns[name]
            for name in ("cluster", "native_id", "array_job_id", "array_task_id")}


def _identity(cluster: str, native_id: str | None, array_job_id: int | None,
              array_task_id: int | None) -> tuple[Any, ...]:
    """How a round tells its records apart: job_id first, else the group key."""
    if native_id is not None:
        return (cluster, native_id)
    return (cluster, array_job_id, array_task_id)


def _distinct_keys(items: list[tuple[int, dict[str, Any]]]
                   ) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, dict[str, Any]]]]:
    """Records whose keys no earlier record of the batch uses, and the rest (a
    later round applies them on top, in the order sent)."""
    seen: set[tuple[Any, ...]] = set()
    now, later = [], []
    for item in items:
        columns = item[1]
        keys: set[tuple[Any, ...]] = set()
        if columns["native_id"] is not None:
            keys.add(("n", columns["cluster"], columns["native_id"]))
        if columns["array_job_id"] is not None:
            keys.add(("a", columns["cluster"], columns["array_job_id"],
                      columns["array_task_id"]))
        if keys & seen:
            later.append(item)
        else:
            now.append(item)
        seen |= keys
    return now, later


def _is_contention(exc: DBAPIError) -> bool:
    """A unique key taken or a deadlock between concurrent batches."""
    code = getattr(exc.orig, "sqlstate", None)
    return isinstance(exc, IntegrityError) or code in ("40P01", "40001")
