"""The gateway's connection to the job daemon, which it starts when none runs."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobgate.backends.local import daemon
from jobgate.errors import BackendError

CONNECT_TIMEOUT = 15.0


class DaemonConnection:
    """Sends orders to the daemon; hands each `{"ended": dir}` it hears to `on_ended`."""

    def __init__(self, runs_dir: Path, on_ended: Callable[[Path], None]) -> None:
        self.runs_dir = runs_dir
        self.on_ended = on_ended
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, order: dict[str, Any]) -> None:
        """Deliver one order, (re)connecting, and starting the daemon, as needed.

        Raises:
            BackendError: the daemon could not be reached.
        """
        data = json.dumps(order).encode() + b"\n"
        with self._lock:
            for attempt in range(2):
                sock = self._sock or self._connect()
                try:
                    sock.sendall(data)
                    return
                except OSError:
                    # The daemon left (idle, or died): one fresh connection.
                    self._close_locked()
                    if attempt:
                        raise BackendError("lost the connection to the job daemon") from None

    def close(self) -> None:
        with self._lock:
            self._close_locked()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def _close_locked(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        path = str(self.runs_dir / "daemon.sock")
        spawned = 0.0
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
            if time.monotonic() > deadline:
                raise BackendError(f"the job daemon did not start (see {self.runs_dir}/"
                                   "daemon.log)")
            if time.monotonic() - spawned > 2.0:
                self._spawn_daemon()
                spawned = time.monotonic()
            time.sleep(0.01)
        self._sock = sock
        self._reader = threading.Thread(target=self._read, args=(sock,), daemon=True,
                                        name="jobgate-local-daemon")
        self._reader.start()
        return sock

    def _spawn_daemon(self) -> None:
        """Start a daemon in a session of its own, so it outlives this process;
        one that finds another daemon serving the home leaves at once."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.runs_dir / "daemon.log", "ab") as log:
            subprocess.run(
                [sys.executable, "-I", "-S", daemon.__file__, str(self.runs_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                check=False,
            )

    def _read(self, sock: socket.socket) -> None:
        pending = b""
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    self.on_ended(Path(json.loads(line)["ended"]))
                except (ValueError, KeyError):
                    continue
