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
from collections.abc import Callable, Iterator, Sequence
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
from jobgate.store.registry import Match, RegistryRepository, Reply

log = logging.getLogger(__name__)

Status = Literal["created", "updated", "unchanged", "rejected"]
# How often a batch is tried again when a concurrent one got in its way
# (deadlock), and how often a record whose key another batch took first.
ATTEMPTS = 3
ROUNDS = 3
# Records parsed, staged and compared at a time: while the server writes one
# chunk, the service parses the next (PostgreSQL).
CHUNK = 300


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
    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 1000,
                 chunk: int = CHUNK) -> None:
        self.sessions = sessions
        self.max_batch = max_batch
        self.chunk = chunk

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
        parsed: list[_Parsed] = []  # chunk by chunk, as the batch asks; kept for a retry

        def chunks() -> Iterator[list[Item]]:
            for number, (start, stop) in enumerate(chunk_bounds(len(records), self.chunk)):
                if number == len(parsed):
                    parsed.append(_parse(records, start, stop))
                yield parsed[number].valid

        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.sessions.begin() as session:
                    done = _Batch(RegistryRepository(session), now).run(chunks())
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
        rejected = {index: outcome for chunk in parsed for index, outcome in chunk.rejected}
        return [rejected.get(index) or done[index] for index in range(len(records))]


def chunk_bounds(count: int, size: int) -> list[tuple[int, int]]:
    """Where each chunk of a batch of `count` records starts and stops. The
    first is small (the server waits while it is parsed); each next one
    doubles, up to `size`, so that the last one's write still hides its parsing."""
    bounds: list[tuple[int, int]] = []
    start, length = 0, max(1, size // 6)
    while start < count or not bounds:
        stop = min(start + length, count)
        bounds.append((start, stop))
        start, length = stop, min(2 * length, size)
    return bounds


# A record as the batch carries it: its place in the batch, its ledger columns.
Item = tuple[int, dict[str, Any]]


class _Parsed(NamedTuple):
    valid: list[Item]
    rejected: list[tuple[int, Outcome]]


def _parse(records: Sequence[Any], start: int, stop: int) -> _Parsed:
    """The records at places start to stop, as ledger columns or rejected."""
    parsed = _Parsed([], [])
    for index in range(start, stop):
        try:
            columns = ledger_columns(parse_record(records[index]))
            # As JSON at once: the record's containers go now, and a dict of
            # plain values is one the garbage collector never walks again
            # (a batch holds thousands of them until it ends).
            columns["registry_data"] = orjson.Fragment(orjson.dumps(columns["registry_data"]))
        except InvalidSpecError as exc:
            parsed.rejected.append(
                (index, Outcome(index, "rejected", field=exc.field, reason=exc.message)))
        else:
            parsed.valid.append((index, columns))
    return parsed


class _Chunk(NamedTuple):
    """A chunk's records, staged: its first round (distinct keys) compared, the rest."""

    first: list[Item]
    compared: Reply[list[Match]]
    rest: list[Item]


class _Batch:
    """One transaction's worth of records: chunk by chunk, each in rounds of
    distinct keys, all in the order sent."""

    def __init__(self, repo: RegistryRepository, now: datetime) -> None:
        self.repo = repo
        self.now = now
        self.outcomes: dict[int, Outcome] = {}

    def run(self, chunks: Iterator[list[Item]]) -> dict[int, Outcome]:
        """Apply the chunks in order. While a chunk's first write runs, the next
        chunk is parsed (`chunks` parses as it goes), staged and compared: on
        PostgreSQL each is sent without waiting (pipeline mode), so that the
        server writes while the service parses. The server runs them in order,
        so the next chunk is compared after this write; a later round of this
        chunk (rare: a job named twice, or a record a concurrent batch got in
        the way of) makes that comparison stale, and it is made again."""
        upcoming: _Chunk | None = None

        def look_ahead() -> None:
            nonlocal upcoming
            upcoming = self._stage(next(chunks, None))

        with self.repo.ahead():
            look_ahead()
            while upcoming is not None:
                chunk, upcoming = upcoming, None
                if self._apply(chunk, look_ahead) and upcoming is not None:
                    upcoming = upcoming._replace(
                        compared=self.repo.compare([index for index, _ in upcoming.first]))
        return self.outcomes

    def _stage(self, items: list[Item] | None) -> _Chunk | None:
        if items is None:
            return None
        self.repo.stage(items)
        first, rest = _distinct_keys(items)
        return _Chunk(first, self.repo.compare([index for index, _ in first]), rest)

    def _apply(self, chunk: _Chunk, meanwhile: Callable[[], None]) -> bool:
        """Apply a chunk's records, calling `meanwhile` while its first round
        writes. Returns whether a later round wrote."""
        this_round, compared, pending = chunk.first, chunk.compared, chunk.rest
        more_rounds = False
        while True:
            # Optimistic first: no row locks (they cost a write each). Records a
            # concurrent batch got in the way of go again, their jobs locked.
            lost, later = self._round(this_round, compared, meanwhile)
            meanwhile = _nothing
            for _ in range(ROUNDS):
                if not lost:
                    break
                more_rounds = True
                lost, more = self._round(
                    lost, self.repo.compare([index for index, _ in lost], lock=True), _nothing)
                later += more
            for index, _columns in lost:
                self.outcomes[index] = Outcome(
                    index, "rejected", reason="a concurrent batch kept making this job; "
                                              "send the record again")
            # Those that named a job an earlier record of the round changed go
            # again after it, in the order sent.
            pending = sorted(later + pending, key=lambda item: item[0])
            if not pending:
                return more_rounds
            more_rounds = True
            this_round, pending = _distinct_keys(pending)
            compared = self.repo.compare([index for index, _ in this_round])

    def _round(self, items: list[Item], compared: Reply[list[Match]],
               meanwhile: Callable[[], None]) -> tuple[list[Item], list[Item]]:
        """Upsert records of distinct keys, compared already. Returns those
        another batch got in the way of (a job it made or wrote first), to try
        again, and those that name a job an earlier record of this round
        changes, for a later round."""
        new: list[Item] = []
        changes: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        later: list[Item] = []
        changed: set[int | None] = set()
        for (index, columns), match in zip(items, compared.result(), strict=True):
            if match.by_native in changed or match.by_array in changed:
                later.append((index, columns))
            elif match.by_native is not None and match.by_array not in (None, match.by_native):
                self.outcomes[index] = Outcome(
                    index, "rejected", field="job_id",
                    reason=f"job_id names ledger job {match.by_native} but group_id/"
                           f"group_index name ledger job {match.by_array}; fix one of them")
            elif match.id is None:
                new.append((index, columns))
            elif not match.changed:
                self.outcomes[index] = Outcome(index, "unchanged", match.id)
            else:
                changes.append((index, columns, self._change(index, match, columns)))
                changed.add(match.id)
        changes.sort(key=lambda change: change[2]["id"])  # rows locked in one order
        written_reply = self.repo.write([index for index, _ in new],
                                        [row for _, _, row in changes], self.now)
        meanwhile()
        made, written = written_reply.result()
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
        lost.sort(key=lambda item: item[0])  # compared again in the order sent
        return lost, later

    def _change(self, index: int, match: Match, columns: dict[str, Any]) -> dict[str, Any]:
        """What overwrites the job `match` found with the record at place `index`
        (`columns`): its runs and what its event says."""
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
        return {"ord": index, "id": match.id, "seen": match.updated_at, "requeue_count": runs,
                "from_state": old.value, "to_state": new.value, "data": data}


def _nothing() -> None:
    pass


def _identity(cluster: str, native_id: str | None, array_job_id: int | None,
              array_task_id: int | None) -> tuple[Any, ...]:
    """How a round tells its records apart: job_id first, else the group key."""
    if native_id is not None:
        return (cluster, native_id)
    return (cluster, array_job_id, array_task_id)


def _distinct_keys(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """Records whose keys no earlier record among `items` uses, and the rest (a
    later round applies them on top, in the order sent)."""
    natives: set[tuple[Any, ...]] = set()
    arrays: set[tuple[Any, ...]] = set()
    now: list[Item] = []
    later: list[Item] = []
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
