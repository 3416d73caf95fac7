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

import orjson
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
from jobgate.store.registry import Match, RegistryRepository

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
                # As JSON at once: the record's containers go now, and a dict of
                # plain values is one the garbage collector never walks again
                # (a batch holds thousands of them until it ends).
                columns["registry_data"] = orjson.Fragment(
                    orjson.dumps(columns["registry_data"]))
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
            lost, later = self._round(this_round, lock=False)
            for _ in range(ROUNDS):
                if not lost:
                    break
                lost, more = self._round(lost, lock=True)
                later += more
            for index, _columns in lost:
                self.outcomes[index] = Outcome(
                    index, "rejected", reason="a concurrent batch kept making this job; "
                                              "send the record again")
            # Those that named a job an earlier record of the round changed go
            # again after it, in the order sent.
            pending = sorted(later + pending, key=lambda item: item[0])
        return self.outcomes

    def _round(self, items: list[tuple[int, dict[str, Any]]], *, lock: bool
               ) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, dict[str, Any]]]]:
        """Upsert records of distinct keys. Returns those another batch got in
        the way of (a job it made or wrote first), to try again, and those that
        name a job an earlier record of this round changes, for a later round."""
        matches = self.repo.compare([columns for _, columns in items], lock=lock)
        new: list[tuple[int, dict[str, Any]]] = []
        places: list[int] = []
        changes: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        later: list[tuple[int, dict[str, Any]]] = []
        changed: set[int | None] = set()
        for place, ((index, columns), match) in enumerate(zip(items, matches, strict=True)):
            if match.by_native in changed or match.by_array in changed:
                later.append((index, columns))
            elif match.by_native is not None and match.by_array not in (None, match.by_native):
                self.outcomes[index] = Outcome(
                    index, "rejected", field="job_id",
                    reason=f"job_id names ledger job {match.by_native} but group_id/"
                           f"group_index name ledger job {match.by_array}; fix one of them")
            elif match.id is None:
                new.append((index, columns))
                places.append(place)
            elif not match.changed:
                self.outcomes[index] = Outcome(index, "unchanged", match.id)
            else:
                changes.append((index, columns, self._change(place, match, columns)))
                changed.add(match.id)
        changes.sort(key=lambda change: change[2]["id"])  # rows locked in one order
        made, written = self.repo.write(places, [row for _, _, row in changes], self.now)
        by_key = {_identity(*key): job_id for job_id, *key in made}
        lost = []
        for index, columns in new:
            job_id = by_key.get(_identity(columns["cluster"], columns["native_id"],
                                          columns["array_job_id"], columns["array_task_id"]))
            if job_id is None:
                lost.append((index, columns))
            else:
                self.outcomes[index] = Outcome(index, "created", job_id)
        for index, columns, row in changes:
            if row["id"] in written:
                self.outcomes[index] = Outcome(index, "updated", row["id"])
            else:
                lost.append((index, columns))
        return lost, later

    def _change(self, place: int, match: Match, columns: dict[str, Any]) -> dict[str, Any]:
        """What overwrites the job `match` found with the record at `place` of the
        round (`columns`): its runs and what its event says."""
        assert match.state is not None  # a job matched has a state
        old, new = JobState(match.state), JobState(columns["state"])
        runs = match.requeue_count
        data: dict[str, Any] = {"source": "registry", "fields": match.changed}
        if old is not new:
            requeue = old.final and not new.final
            if requeue:
                runs += 1
            if not can_transition(old, new, requeue=requeue):
                data["against_ledger_rules"] = True
                log.warning("registry job %s: %s -> %s as its scheduler says (the ledger "
                            "would refuse this move for a job run here)", match.id, old, new)
            if requeue:
                data["requeued"] = True
        return {"ord": place, "id": match.id, "seen": match.updated_at, "requeue_count": runs,
                "from_state": old.value, "to_state": new.value, "data": data}


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
    natives: set[tuple[Any, ...]] = set()
    arrays: set[tuple[Any, ...]] = set()
    now: list[tuple[int, dict[str, Any]]] = []
    later: list[tuple[int, dict[str, Any]]] = []
    for item in items:
        columns = item[1]
        taken = False
        if columns["native_id"] is not None:
            native = (columns["cluster"], columns["native_id"])
            taken = native in natives
            natives.add(native)
        if columns["array_job_id"] is not None:
            array = (columns["cluster"], columns["array_job_id"], columns["array_task_id"])
            taken = taken or array in arrays
            arrays.add(array)
        (later if taken else now).append(item)
    return now, later


def _is_contention(exc: DBAPIError) -> bool:
    """A unique key taken or a deadlock between concurrent batches."""
    code = getattr(exc.orig, "sqlstate", None)
    return isinstance(exc, IntegrityError) or code in ("40P01", "40001")
