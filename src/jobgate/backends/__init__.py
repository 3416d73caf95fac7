"""Cluster backends: the local cluster and Slurm, behind one protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobgate.backends.base import Backend
    from jobgate.config import ClusterConfig, Settings


def make_backend(name: str, config: ClusterConfig, settings: Settings) -> Backend:
    """The backend a cluster's configuration asks for.

    Raises:
        UnsupportedError: a backend kind jobgate does not have (yet).
    """
    from jobgate.errors import UnsupportedError

    if config.backend == "local":
        from jobgate.backends.local import LocalBackend

        return LocalBackend(settings.resolved_home, kill_wait=settings.kill_wait, cluster=name,
                            config=config)
    if config.backend == "slurm":
        from jobgate.backends.slurm import SlurmBackend

        return SlurmBackend(settings.resolved_home, cluster=name, config=config)
    raise UnsupportedError(f"cluster {name!r}: backend {config.backend!r} is not available yet")
