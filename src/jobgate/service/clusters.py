"""What each cluster is: partitions and their limits, capabilities, resources, load."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from jobgate.backends.base import Backend
from jobgate.config import Settings
from jobgate.errors import NotFoundError
from jobgate.store.jobs import cluster_load


class ClusterService:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings,
                 backends: Mapping[str, Backend]) -> None:
        self.sessions = sessions
        self.settings = settings
        self.backends = backends

    def names(self) -> list[str]:
        return list(self.backends)

    def describe(self, name: str) -> dict[str, Any]:
        """Raises:
        NotFoundError: no such cluster.
        """
        backend = self.backends.get(name)
        config = self.settings.clusters.get(name)
        if backend is None or config is None:
            raise NotFoundError(f"no cluster {name!r}; known: {', '.join(self.backends)}")
        with self.sessions() as session:
            counts, cpus_in_use = cluster_load(session, name)
        partitions = backend.partitions()
        return {
            "name": name,
            "backend": config.backend,
            "default": name == self.settings.default_cluster,
            "partitions": [p.model_dump() for p in partitions],
            "default_partition": next((p.name for p in partitions if p.default),
                                      partitions[0].name if partitions else ""),
            "verbs": sorted(backend.capabilities.verbs),
            "resources": backend.resources(),
            "load": {"jobs": counts, "cpus_in_use": cpus_in_use},
        }
