"""`jobgate serve --workers N`: several API processes on one home and store."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import psutil

from jobgate.service.doorbell import Doorbell
from server_process import ServerProcess


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
