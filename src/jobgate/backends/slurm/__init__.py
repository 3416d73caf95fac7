"""Slurm clusters: jobs handed to a real Slurm, through its commands (transport
"cli") or slurmrestd (transport "rest")."""

from jobgate.backends.slurm.backend import SlurmBackend

__all__ = ["SlurmBackend"]
