"""`jobgate serve --workers N`: several API processes on one home and store."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from jobgate.service.doorbell import Doorbell
from server_process import ServerProcess, clean_environment, free_port


def test_two_workers_run_every_job_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home").start(args=("--workers", "2"))
    try:
        workers = [p for p in psutil.Process(server.process.pid).children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
        headers = {"Authorization": f"Bearer {server.token}"}
        ids = []
        for i in range(30):
            # A fresh connection each time, so that both workers take submissions.
            answer = httpx.post(f"{server.url}/v1/jobs", headers=headers,
                                json={"command": f"echo run-{i}"}, timeout=30)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        for i, job_id in enumerate(ids):
            done = httpx.get(f"{server.url}/v1/jobs/{job_id}/wait", headers=headers,
                             params={"timeout": 30}, timeout=40).json()
            assert done["state"] == "COMPLETED", done
            out = httpx.get(f"{server.url}/v1/jobs/{job_id}/stdout", headers=headers).text
            assert out == f"run-{i}\n"  # ran once, by one engine
    finally:
        server.stop()


def _listening(process: psutil.Process, port: int) -> int:
    return sum(1 for c in process.net_connections(kind="tcp")
               if c.status == psutil.CONN_LISTEN and c.laddr.port == port)


def test_each_worker_listens_on_its_own_socket_and_connections_spread(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home").start(args=("--workers", "2"))
    try:
        parent = psutil.Process(server.process.pid)
        workers = [p for p in parent.children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
        # The parent listens on nothing; each worker on a socket of its own
        # (with one socket shared by all, the parent and both workers hold it).
        deadline = time.monotonic() + 30  # the server answered: one worker is up
        while time.monotonic() < deadline and not all(_listening(w, server.port)
                                                      for w in workers):
            time.sleep(0.1)
        assert _listening(parent, server.port) == 0
        assert [_listening(worker, server.port) for worker in workers] == [1, 1]
        # 32 connections held open at once: the kernel spreads them by their
        # addresses, so each worker holds some (all on one: odds of 2**-31).
        headers = {"Authorization": f"Bearer {server.token}"}
        clients = [httpx.Client(base_url=server.url, headers=headers, timeout=30)
                   for _ in range(32)]
        try:
            for client in clients:
                assert client.get("/v1/jobs", params={"limit": 1}).status_code == 200
            held = [sum(1 for c in worker.net_connections(kind="tcp")
                        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port)
                    for worker in workers]
            assert sum(held) == 32 and min(held) > 0, held
        finally:
            for client in clients:
                client.close()
    finally:
        server.stop()


def test_workers_refuse_a_port_in_use(tmp_path: Path) -> None:
    taken = socket.socket()
    port = free_port()
    taken.bind(("127.0.0.1", port))
    taken.listen()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "jobgate", "serve", "--workers", "2", "--host", "127.0.0.1",
             "--port", str(port), "--home", str(tmp_path / "home")],
            env=clean_environment(), capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert done.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in done.stderr


def test_doorbell_rings_the_other_processes_and_forgets_dead_ones(tmp_path: Path) -> None:
    directory = tmp_path / "bell"
    heard = threading.Event()
    ringer = Doorbell(directory, lambda: None)
    listener = Doorbell(directory, heard.set)
    ringer.start()
    listener.start()
    dead = directory / "999999.dead.sock"
    dead.touch()  # a socket file whose process died without removing it
    try:
        ringer.ring()
        assert heard.wait(10)
        assert not dead.exists()
    finally:
        ringer.stop()
        listener.stop()
    assert list(directory.iterdir()) == []
