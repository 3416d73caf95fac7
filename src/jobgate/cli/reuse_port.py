"""A listening socket of its own for each worker of `jobgate serve --workers N`.

uvicorn hands every worker the one socket its parent bound, and the worker
whose event loop wakes first accepts every connection waiting: a burst of
keep-alive connections often went mostly to one worker while the other idled
(bench/api_submit.py, 2 workers at concurrency 16: 580 submits/s when skewed,
930/s when even). Here each worker binds its own socket on the same address
with SO_REUSEPORT, and the kernel spreads new connections across them.

uvicorn's supervisor sends the sockets to each worker it starts (and restarts)
by pickling them; `PortPerWorker` pickles as its address, so that unpickled in
a worker it is a list holding that worker's own new socket. The parent listens
on nothing. It first binds the address alone, as uvicorn would, so that a port
in use (by another server, with SO_REUSEPORT or not) fails at once instead of
being shared; then it holds it, bound but not listening (a socket that does not
listen is never handed connections), for the workers it starts later on.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


def serve_workers(app: str, workers: int, host: str, port: int, access_log: bool) -> None:
    """uvicorn.run(app, workers=...) with a listening socket in each worker.

    Raises:
        OSError: the address is in use, or not one of this host.
    """
    config = uvicorn.Config(app, factory=True, workers=workers, host=host, port=port,
                            log_level="info", access_log=access_log)
    sockets = PortPerWorker(host, port)
    try:
        Multiprocess(config, sockets=sockets).run()
    except KeyboardInterrupt:
        pass
    finally:
        sockets.close()


class PortPerWorker(list[socket.socket]):
    """The `sockets` argument of uvicorn's Multiprocess: empty in the parent,
    a fresh SO_REUSEPORT listening socket in each worker."""

    def __init__(self, host: str, port: int) -> None:
        """Raises:
        OSError: the address is in use, or not one of this host.
        """
        super().__init__()
        self.host = host
        alone = _socket(host, reuse_port=False)
        try:
            alone.bind((host, port))
            self.port = alone.getsockname()[1]  # port 0: the kernel's pick
        finally:
            alone.close()
        self._held = _socket(host)
        self._held.bind((host, self.port))

    def __reduce__(self) -> tuple[Any, ...]:
        return (bind_reuse_port, (self.host, self.port))

    def close(self) -> None:
        self._held.close()


def bind_reuse_port(host: str, port: int) -> list[socket.socket]:
    """A socket bound to (host, port) beside the other workers' (the worker
    side of unpickling a PortPerWorker). uvicorn makes it listen.

    Raises:
        OSError: the address is taken by a process that does not share it.
    """
    sock = _socket(host)
    sock.bind((host, port))
    return [sock]


def _socket(host: str, reuse_port: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn's bind_socket
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock
