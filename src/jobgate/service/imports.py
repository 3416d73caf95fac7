"""Outside jobs that backends import, into the ledger through the registry.

A backend cannot reach the service layer (backends <- service), so an importing
backend (backends/importing.py) only queues registry records; the engine, which
drives the backends, calls `run_once()` each round after applying their updates,
and `adopt()` once it holds the engine lease. The records then take the same
path as those pushed to `POST /v1/registry/jobs`: `RegistryService.ingest`, here
as a built-in client with the `ingest` role. So imported jobs are registry jobs
in every respect (`source = 'registry'`, verbs refused with 501, listed,
filtered and counted like any job), told apart by their
`registry_data.additional_data.imported_from`. A job's owner is its Slurm user
name, which is the jobgate user of that name when there is one.

A Slurm job the gateway itself submitted is never imported: its comment tag
keeps it out of the importer already, and should the tag be gone (a changed
comment, a changed gateway id), a gateway job with its Slurm id keeps it out here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from jobgate.backends.base import Backend
from jobgate.backends.importing import ImportingBackend
from jobgate.service.auth import Principal
from jobgate.service.registry import RegistryService
from jobgate.store.imported import gateway_native_ids, registry_jobs_not_ended

log = logging.getLogger(__name__)

IMPORTER = Principal(name="jobgate-import", is_admin=False, roles=frozenset({"ingest"}))


class JobImports:
    def __init__(self, sessions: sessionmaker[Session], registry: RegistryService,
                 backends: Mapping[str, Backend]) -> None:
        self.sessions = sessions
        self.registry = registry
        self.sources: dict[str, ImportingBackend] = {
            name: backend for name, backend in backends.items()
            if isinstance(backend, ImportingBackend) and backend.imports_jobs}
        # Records taken from the backends and not yet stored, the last per job:
        # kept for the next round should the store fail (a backend sends a
        # change once).
        self._backlog: dict[tuple[str, Any], dict[str, Any]] = {}

    def adopt(self) -> None:
        """Hand each importing backend the registry jobs of its cluster that
        have not ended, so that those it imported get their ends."""
        for cluster, backend in self.sources.items():
            with self.sessions() as session:
                jobs = registry_jobs_not_ended(session, cluster)
            backend.adopt_imported(jobs)

    def run_once(self) -> None:
        """Ingest what the backends imported since the last round.

        Raises:
            ConflictError, DBAPIError: the store failed; the records are kept
                for the next round.
        """
        for backend in self.sources.values():
            for record in backend.take_imported():
                self._backlog[(record["cluster_id"], record["job_id"])] = record
        if not self._backlog:
            return
        records = self._without_gateway_jobs(list(self._backlog.values()))
        size = self.registry.max_batch
        for start in range(0, len(records), size):
            batch = records[start:start + size]
            for outcome in self.registry.ingest(batch, IMPORTER):
                if outcome.status == "rejected":
                    record = batch[outcome.position]
                    log.warning("cluster %s: Slurm job %s not imported: %s: %s",
                                record["cluster_id"], record["job_id"], outcome.field,
                                outcome.reason)
        self._backlog = {}

    def _without_gateway_jobs(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records whose Slurm job is no job of the gateway's. A gateway job
        with the same id that ended before the record's job was submitted is an
        earlier job the id was given to (Slurm's ids wrap, or start again)."""
        clusters = {record["cluster_id"] for record in records}
        ends: dict[tuple[str, str], list[datetime | None]] = {}
        with self.sessions() as session:
            for cluster in clusters:
                ids = [str(r["job_id"]) for r in records if r["cluster_id"] == cluster]
                for native_id, end in gateway_native_ids(session, cluster, ids):
                    ends.setdefault((cluster, native_id), []).append(end)
        if not ends:
            return records
        kept = []
        for record in records:
            gateway_ends = ends.get((record["cluster_id"], str(record["job_id"])))
            submitted = _time(record.get("submitted"))
            if gateway_ends and any(end is None or submitted is None or end >= submitted
                                    for end in gateway_ends):
                log.info("cluster %s: Slurm job %s is a job of this gateway: not imported",
                         record["cluster_id"], record["job_id"])
                continue
            kept.append(record)
        return kept


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
