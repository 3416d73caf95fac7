from __future__ import annotations

import os
import subprocess
import sys

from jobgate.service.engine import process_identity, process_is_gone


def test_a_live_process_is_not_gone() -> None:
    assert not process_is_gone(process_identity(os.getpid()))


def test_an_ended_process_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    identity = process_identity(child.pid)
    child.kill()
    child.wait()
    assert process_is_gone(identity)


def test_a_recycled_pid_is_gone() -> None:
    host, pid, started = process_identity(os.getpid()).split(":")
    assert process_is_gone(f"{host}:{pid}:{float(started) - 100:.3f}")


def test_another_hosts_process_is_never_judged_here() -> None:
    assert not process_is_gone("some-other-host:1:0.000")


def test_a_nonce_does_not_change_the_verdict() -> None:
    assert not process_is_gone(process_identity(os.getpid()) + ":abc123")
