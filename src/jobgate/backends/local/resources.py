"""What the local node has: CPUs, memory and GPUs, discovered or configured."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import psutil

from jobgate.backends.local.scheduler import Resources
from jobgate.config import ClusterConfig


def discover_gpus() -> tuple[int, ...]:
    """GPU indices that nvidia-smi reports; none where it is absent or fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(int(line) for line in out.split() if line.strip().isdigit())


def node_resources(config: ClusterConfig) -> Resources:
    """The machine's resources, each overridable in jobgate.toml."""
    usable = sorted(os.sched_getaffinity(0))
    cpus = tuple(usable if config.cpus is None else range(config.cpus))
    memory = config.memory or psutil.virtual_memory().total // (1024 * 1024)
    gpus = discover_gpus() if config.gpus is None else tuple(range(config.gpus))
    return Resources(cpus=cpus, memory=memory, gpus=gpus)


def node_name() -> str:
    return socket.gethostname().split(".")[0]
