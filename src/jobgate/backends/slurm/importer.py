"""Jobs on a Slurm cluster that jobgate did not submit, as registry records.

With `import_jobs = true` in a cluster's configuration, its poller reads every
job of the one squeue it makes each cycle, not only those tagged with this
gateway's comment, and hands the others (no tag, or another gateway's) to an
`Importer`. The Importer turns each into a registry record (the shape of `POST
/v1/registry/jobs`, marked `additional_data.imported_from = "slurm"`) and keeps
the last record it sent per job: an unchanged job costs one comparison and
sends nothing. The comparison is first of the raw values the record is made
from (a tuple of a few dozen lookups), so an unchanged job does not even have its
record built. What changed in a cycle goes out as one batch, which the engine
ingests through the registry (see backends/importing.py).

A job that leaves squeue without having been seen ended is looked up in the
poller's sacct of that cycle (one call for its own jobs and these); its end
(state, exit code, times) is laid over the last record sent. Without accounting,
or while sacct has no end for it, it becomes UNKNOWN: never a guessed COMPLETED.

Calls to Slurm: none of its own. The squeue is the poller's; lookups ride on
its sacct. Importing only keeps the poller running while no job of the gateway
is tracked (one squeue per `poll_interval_max`), and a cycle in which only
outside jobs left squeue makes the sacct the poller would otherwise have skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobgate.backends.slurm.parsing import SlurmJob
from jobgate.domain.job import JobRecord
from jobgate.domain.states import JobState

log = logging.getLogger(__name__)

IMPORTED_FROM = "slurm"
# How often an outside job that left squeue, and that sacct does not know (yet),
# is looked for again, and for how long.
LOST_RETRY = 30.0
LOST_GIVE_UP = 24 * 3600.0
# Outside jobs one sacct looks up at most (the rest wait for the next cycle).
LOOKUPS_PER_CALL = 500
# Slurm's INFINITE and NO_VAL time limits (minutes).
_NO_LIMIT = 0xFFFFFFFE
# Every field of squeue's job object that job_from_squeue and record_from_squeue
# read (a test holds them to it): a job whose values of these did not change
# since the last cycle has the same record.
RAW_KEYS = (
    "job_id", "job_state", "state_reason", "exit_code", "submit_time", "start_time",
    "end_time", "comment", "name", "user_name", "user_id", "partition", "restart_cnt",
    "array_job_id", "array_task_id", "array_task_string", "time_limit", "nodes",
    "node_count", "tres_alloc_str", "tres_req_str", "current_working_directory",
    "account", "resv_name", "qos", "cluster",
)


def fingerprint(raw: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What a record is made from, to compare with the last cycle's (None: no
    squeue object to compare, the record itself is compared)."""
    return tuple(map(raw.get, RAW_KEYS)) if raw else None


def _text(value: Any, limit: int) -> str | None:
    """A field as the registry takes it: None when empty, cut to its length."""
    text = str(value).strip() if value is not None else ""
    return text[:limit] or None


def _int(value: Any) -> int | None:
    if isinstance(value, dict):  # 23.02+: {"set": true, "infinite": false, "number": N}
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def exit_pair(job: SlurmJob) -> str | None:
    """Slurm's 'code:signal' for an ended job (None while it runs or unknown)."""
    if job.exit_code_signal is not None:
        return f"0:{job.exit_code_signal}"
    if job.exit_code is not None:
        return f"{job.exit_code}:0"
    return None


def record_from_squeue(job: SlurmJob, cluster: str) -> dict[str, Any]:
    """The registry record of one job of `squeue --json` (22.05; slurmrestd
    v0.0.38 job objects have the same shape). States are the poller's mapping,
    so an imported job reads as a job of the gateway would."""
    raw = job.raw
    array_job_id = _int(raw.get("array_job_id")) or None
    array_task_id = _int(raw.get("array_task_id"))
    in_group = array_job_id is not None and array_task_id is not None
    minutes = _int(raw.get("time_limit"))
    hosts = _text(raw.get("nodes"), 65536)
    extra: dict[str, Any] = {"imported_from": IMPORTED_FROM, "cluster": cluster,
                             "slurm_job_id": job.native_id, "slurm_state": job.native_state}
    for key, name in (("slurm_cluster", "cluster"), ("qos", "qos")):
        if value := _text(raw.get(name), 256):
            extra[key] = value
    if array_job_id is not None and not in_group:
        # The array's tasks still waiting (Slurm lists them as one job).
        extra["array_job_id"] = array_job_id
        extra["array_tasks"] = _text(raw.get("array_task_string"), 256)
    return {
        "job_id": int(job.native_id) if job.native_id.isdigit() else job.native_id,
        "group_id": array_job_id if in_group else None,
        "group_index": array_task_id if in_group else None,
        "cluster_id": cluster,
        "user": job.user_name or str(raw.get("user_id", "")) or "unknown",
        "job_name": _text(job.name, 256),
        "compute_project_id": _text(raw.get("account"), 128),
        "partition": _text(job.partition, 64),
        "state": job.state.value,
        "reason": _text(job.reason, 256),
        "exit_code": exit_pair(job),
        "submitted": _iso(job.submit_time),
        "start": _iso(job.start_time),
        "end": _iso(job.end_time),
        "time_limit": None if minutes is None or minutes >= _NO_LIMIT else minutes * 60,
        "nodes": hosts if hosts is not None else _int(raw.get("node_count")),
        "allocated_resources": _text(raw.get("tres_alloc_str") or raw.get("tres_req_str"),
                                     4096),
        "working_directory": _text(raw.get("current_working_directory"), 4096),
        "reservation": _text(raw.get("resv_name"), 256),
        "additional_data": extra,
    }


def is_imported(job: JobRecord) -> bool:
    """A ledger job this importer made (not one pushed over HTTP)."""
    extra = (job.registry_data or {}).get("additional_data")
    return isinstance(extra, dict) and extra.get("imported_from") == IMPORTED_FROM


def record_from_ledger(job: JobRecord) -> dict[str, Any]:
    """The record an imported job was last stored with, rebuilt from the ledger
    (after a restart, to lay an end from sacct over)."""
    data = job.registry_data or {}
    if job.exit_code_signal is not None:
        exit_code: str | None = f"0:{job.exit_code_signal}"
    else:
        exit_code = None if job.exit_code is None else f"{job.exit_code}:0"
    native = job.native_id or ""
    grouped = job.array_job_id is not None and job.array_task_id is not None
    return {
        "job_id": int(native) if native.isdigit() else native,
        "group_id": job.array_job_id if grouped else None,
        "group_index": job.array_task_id if grouped else None,
        "cluster_id": job.cluster, "user": job.user_name, "job_name": job.name or None,
        "compute_project_id": job.account, "partition": job.partition or None,
        "state": job.state.value, "reason": job.state_reason, "exit_code": exit_code,
        "submitted": _iso(job.submit_time), "start": _iso(job.start_time),
        "end": _iso(job.end_time), "time_limit": job.time_limit,
        "nodes": data.get("nodes", job.num_nodes),
        "allocated_resources": data.get("allocated_resources"),
        "working_directory": job.working_directory or None,
        "reservation": data.get("reservation"), "additional_data": data.get("additional_data"),
    }


def ended_record(last: Mapping[str, Any], job: SlurmJob) -> dict[str, Any]:
    """The last record sent, with the end sacct reports (sacct's text lines carry
    the state, reason, exit code and times only)."""
    extra = dict(last.get("additional_data") or {})
    extra["slurm_state"] = job.native_state
    return {**last, "state": job.state.value, "reason": _text(job.reason, 256),
            "exit_code": exit_pair(job), "start": _iso(job.start_time) or last.get("start"),
            "end": _iso(job.end_time), "additional_data": extra}


@dataclass
class Seen:
    """An outside job the importer has sent a record of and not yet let go."""

    record: dict[str, Any]
    fingerprint: tuple[Any, ...] | None
    # Monotonic time the importer learned of it: a squeue begun earlier may not list it.
    since: float
    # When it was last in squeue (wall time): sacct looks from a little before.
    last_seen: datetime
    final: bool
    missing: bool = False
    lost_at: float | None = None
    next_lookup: float = 0.0


@dataclass(frozen=True)
class Lookup:
    native_id: str
    last_seen: datetime


class Importer:
    """Outside jobs of one cluster, turned into registry records (module doc).

    `observe` and `resolve` run on the poller's thread, `adopt` on the engine's;
    records go to `deliver` in one batch per cycle (`flush`)."""

    def __init__(self, cluster: str, gateway: str,
                 deliver: Callable[[list[dict[str, Any]]], None], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cluster = cluster
        self.gateway = gateway
        self.deliver = deliver
        self.clock = clock
        self._seen: dict[str, Seen] = {}
        self._batch: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def count(self) -> int:
        with self._lock:
            return len(self._seen)

    def adopt(self, jobs: Sequence[JobRecord]) -> None:
        """Imported jobs the ledger has as not ended: each gets its end even if
        it left squeue while no gateway was watching."""
        now = self.clock()
        with self._lock:
            for job in jobs:
                if job.native_id is None or not is_imported(job) \
                        or job.native_id in self._seen:
                    continue
                # From its submission on: when it was last seen is not known.
                self._seen[job.native_id] = Seen(record_from_ledger(job), None, now,
                                                 job.submit_time, final=False)

    def observe(self, jobs: Iterable[SlurmJob], now: datetime, taken: float) -> None:
        """One squeue's outside jobs (a call begun at monotonic `taken`): records of
        the new and the changed; jobs gone from it are let go if their end was
        sent, else looked up next (`due`)."""
        present = set()
        with self._lock:
            for job in jobs:
                present.add(job.native_id)
                seen = self._seen.get(job.native_id)
                mark = fingerprint(job.raw)
                if seen is not None and mark is not None and mark == seen.fingerprint:
                    # Unchanged: not even its record is made.
                    seen.last_seen, seen.missing = now, False
                    continue
                record = record_from_squeue(job, self.cluster)
                if seen is None:
                    self._seen[job.native_id] = Seen(record, mark, taken, now, job.state.final)
                    self._batch.append(record)
                    continue
                if record != seen.record:
                    seen.record = record
                    self._batch.append(record)
                seen.fingerprint, seen.last_seen, seen.final = mark, now, job.state.final
                seen.missing, seen.lost_at, seen.next_lookup = False, None, 0.0
            for native_id, seen in list(self._seen.items()):
                if native_id in present:
                    continue
                if seen.final:
                    del self._seen[native_id]  # its end was sent; Slurm let it go
                elif seen.since < taken:
                    seen.missing = True

    def due(self) -> list[Lookup]:
        """The jobs that left squeue unended and are due to be looked for in sacct."""
        now = self.clock()
        with self._lock:
            found = [Lookup(native_id, seen.last_seen) for native_id, seen in self._seen.items()
                     if seen.missing and now >= seen.next_lookup]
        return found[:LOOKUPS_PER_CALL]

    def resolve(self, asked: Sequence[Lookup], found: Mapping[str, SlurmJob], *,
                looked_up: bool, accounting: bool | None) -> None:
        """What sacct said of the jobs `asked` about (`looked_up`: it answered;
        `accounting` False: the cluster keeps none)."""
        now = self.clock()
        with self._lock:
            for lookup in asked:
                seen = self._seen.get(lookup.native_id)
                if seen is None or not seen.missing:
                    continue
                job = found.get(lookup.native_id)
                # A job id Slurm gave again to a job of this gateway is not the one asked about.
                if job is not None and job.state.final and (
                        job.tag is None or job.tag.gateway != self.gateway):
                    self._batch.append(ended_record(seen.record, job))
                    del self._seen[lookup.native_id]
                    continue
                if accounting is False:
                    self._batch.append(self._unknown(
                        seen, lookup.native_id, "the cluster keeps no accounting"))
                    del self._seen[lookup.native_id]
                    continue
                if not looked_up:
                    continue  # sacct failed this time: ask again next cycle
                seen.next_lookup = now + LOST_RETRY
                if seen.lost_at is None:
                    seen.lost_at = now
                    self._batch.append(self._unknown(
                        seen, lookup.native_id, "sacct has no end for it"))
                elif now - seen.lost_at > LOST_GIVE_UP:
                    log.info("cluster %s: outside job %s stays UNKNOWN (no end in sacct "
                             "after a day)", self.cluster, lookup.native_id)
                    del self._seen[lookup.native_id]

    def _unknown(self, seen: Seen, native_id: str, why: str) -> dict[str, Any]:
        record = {**seen.record, "state": JobState.UNKNOWN.value,
                  "reason": f"Slurm job {native_id} left squeue and {why}"}
        seen.record, seen.fingerprint = record, None  # back in squeue: sent again
        return record

    def flush(self) -> None:
        """Hand over this cycle's records, if any, as one batch."""
        with self._lock:
            batch, self._batch = self._batch, []
        if batch:
            self.deliver(batch)
