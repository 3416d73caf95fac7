"""A real `python -m jobgate serve` that tests start, kill -9 and start again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# `jobgate ARGS...` run as a subprocess (the CLI tests' fixture).
Run = Callable[..., subprocess.CompletedProcess[str]]

# Variables that would point a test at some other gateway, store or config.
_ISOLATE = ("JOBGATE_URL", "JOBGATE_TOKEN", "JOBGATE_HOME", "JOBGATE_CONFIG",
            "JOBGATE_DATABASE_URL")


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _ISOLATE}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    url: str
    token: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for a CLI subprocess that talks to this server."""
        return {**clean_environment(), "JOBGATE_URL": self.url, "JOBGATE_TOKEN": self.token,
                **extra}


class ServerProcess:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home.parent / f"{home.name}-server.log"

    def start(self, timeout: float = 60.0, args: tuple[str, ...] = (),
              **env: str) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        environment = {**clean_environment(), "JOBGATE_KILL_WAIT": "1",
                       "JOBGATE_ENGINE_INTERVAL": "0.1", **env}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jobgate", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--home", str(self.home), *args],
                cwd=self.home.parent, env=environment, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jobgate serve exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"jobgate serve did not come up:\n{self.log.read_text()}")

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10,
                            headers={"Authorization": f"Bearer {self.token}"})

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def live_server(base: Path) -> Iterator[LiveServer]:
    """`jobgate serve` on a free port with its home under `base`, stopped after."""
    server = ServerProcess(base / "home").start()
    try:
        yield LiveServer(url=server.url, token=server.token, home=server.home)
    finally:
        server.stop()


def wait_for(client: httpx.Client, job_id: int, predicate: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never matched; last seen {job}")
