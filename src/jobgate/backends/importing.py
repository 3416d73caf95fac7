"""Backends that bring jobs submitted outside jobgate into the ledger.

Such a backend sees its cluster's other jobs anyway (Slurm's squeue lists every
job) and turns them into registry records (the shape of `POST
/v1/registry/jobs`). It cannot store them itself: backends sit below the service
layer and may not reach up to it. So it only queues them; the engine takes them
each round and hands them to the registry (`service/imports.py`), the same path
records pushed over HTTP take.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from jobgate.domain.job import JobRecord


@runtime_checkable
class ImportingBackend(Protocol):
    @property
    def imports_jobs(self) -> bool:
        """Whether this cluster's configuration asks for its outside jobs."""

    def take_imported(self) -> list[dict[str, Any]]:
        """Registry records of outside jobs that changed since the last call,
        oldest first (the engine ingests them)."""

    def adopt_imported(self, jobs: Sequence[JobRecord]) -> None:
        """After a restart: the imported jobs the ledger still has as not ended,
        so that one that left the cluster's queue meanwhile gets its end."""
