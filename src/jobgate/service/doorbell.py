"""A doorbell between the gateway processes sharing one home (`serve --workers N`).

A commit in one process must wake the engine, the webhook dispatcher and the
push waiters of the others, or a job submitted through one worker would wait
for the engine's next timed round in another. Each process binds a Unix
datagram socket in HOME/bell/ and, after its commits, sends one byte to every
other socket there. A lost ring costs only latency: the waiters and the engine
re-read the store on their own intervals anyway. Processes on other hosts (one
PostgreSQL store) are not reached; they rely on those intervals.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# How often the list of peers is read again from the directory.
PEERS_REFRESH = 1.0


class Doorbell:
    def __init__(self, directory: Path, on_ring: Callable[[], None]) -> None:
        self.directory = directory
        self.on_ring = on_ring
        self.path = directory / f"{os.getpid()}.{uuid.uuid4().hex[:4]}.sock"
        self._socket: socket.socket | None = None
        # Rings go out through a socket that never blocks: a busy peer is skipped.
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        self._thread: threading.Thread | None = None
        self._peers: list[str] = []
        self._peers_read = 0.0
        self._lock = threading.Lock()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            listener.bind(str(self.path))
        except OSError as exc:  # e.g. a home so deep its path exceeds 107 bytes
            listener.close()
            log.warning("doorbell off (%s): other processes of this home are seen only "
                        "on their polling intervals", exc)
            return
        self._socket = listener
        self._thread = threading.Thread(target=self._listen, name="jobgate-doorbell",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        listener, self._socket = self._socket, None
        if listener is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        # Wake our own listener so that it sees it must stop.
        with contextlib.suppress(OSError):
            self._sender.sendto(b"\0", str(self.path))
        listener.close()
        self._sender.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def ring(self) -> None:
        """Tell every other process of this home to look again (any thread)."""
        if self._socket is None:
            return
        for peer in self._current_peers():
            try:
                self._sender.sendto(b"\1", peer)
            except BlockingIOError:
                pass  # its queue is full of rings already
            except (ConnectionRefusedError, FileNotFoundError):
                self._forget(peer)  # a process that died without unlinking its socket
            except OSError:
                log.debug("doorbell: cannot ring %s", peer, exc_info=True)

    def _current_peers(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            if now - self._peers_read >= PEERS_REFRESH:
                self._peers_read = now
                try:
                    names = os.listdir(self.directory)
                except OSError:
                    names = []
                own = self.path.name
                self._peers = [str(self.directory / name) for name in names
                               if name.endswith(".sock") and name != own]
            return list(self._peers)

    def _forget(self, peer: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(peer)
        with self._lock:
            self._peers = [p for p in self._peers if p != peer]

    def _listen(self) -> None:
        while True:
            listener = self._socket
            if listener is None:
                return
            try:
                listener.recv(64)
            except OSError:
                return
            if self._socket is None:
                return
            try:
                self.on_ring()
            except Exception:  # a ring must never kill the listener
                log.exception("doorbell: handling a ring failed")
