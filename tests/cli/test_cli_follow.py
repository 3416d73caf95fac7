"""Commands that keep running: `events -f`, `watch` woken by events; and a token
from $JOBGATE_TOKEN alone."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import IO

from jobgate import Client, JobState
from server_process import LiveServer, Run, clean_environment

WAIT = 120  # generous upper bounds for a loaded machine, not timings


def _lines(stream: IO[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """The lines of a pipe as they come (a reader thread; '' at the end)."""
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            found.put(line)
        found.put("")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return found, reader


def _spawn(server: LiveServer, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "jobgate", *args], cwd=tmp_path,
                            env=server.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_events_follow_prints_changes_as_they_happen(
    server: LiveServer, client: Client, tmp_path: Path
) -> None:
    job = client.submit(command="true", hold=True)
    follower = _spawn(server, tmp_path, "events", "-f", "--job", str(job.id), "--json")
    assert follower.stdout is not None and follower.stderr is not None
    lines, reader = _lines(follower.stdout)
    try:
        first = json.loads(lines.get(timeout=WAIT))
        assert (first["job_id"], first["to_state"]) == (job.id, "PENDING")
        # Printed while the command runs on, not at its end: released only now.
        job.release()
        states = []
        while "COMPLETED" not in states:
            line = lines.get(timeout=WAIT)
            assert line, follower.stderr.read()
            event = json.loads(line)
            assert event["job_id"] == job.id
            states.append(event["to_state"])
        assert states[-1] == "COMPLETED" and "RUNNING" in states
        assert follower.poll() is None  # -f follows until Ctrl-C
    finally:
        follower.kill()
        follower.wait()
        reader.join(timeout=WAIT)
        follower.stdout.close()
        follower.stderr.close()


def test_watch_redraws_when_a_job_changes(jobgate_cli: Run, server: LiveServer,
                                          client: Client, tmp_path: Path) -> None:
    tag = f"w-{uuid.uuid4().hex[:8]}"
    job = client.submit(command="sleep 5", hold=True, tags=[tag])
    # Two draws; no periodic redraw for 60 s and no polling: only an event ends it.
    watcher = _spawn(server, tmp_path, "watch", "--tag", tag, "--count", "2",
                     "--refresh", "60", "--interval", "600")
    with watcher:
        try:
            job.release()
            out, err = watcher.communicate(timeout=WAIT)
        finally:
            watcher.kill()
    assert watcher.returncode == 0, err
    assert str(job.id) in out and "STATE" in out
    assert job.wait(timeout=WAIT) is JobState.COMPLETED


def test_a_token_from_the_environment_alone(server: LiveServer, tmp_path: Path) -> None:
    # No config file, no admin.token under $JOBGATE_HOME: only $JOBGATE_TOKEN.
    env = {**clean_environment(), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
           "JOBGATE_CLIENT_CONFIG": str(tmp_path / "none.toml"),
           "JOBGATE_HOME": str(tmp_path / "nohome"), "JOBGATE_URL": server.url}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env={**env, **extra},
                              capture_output=True, text=True, timeout=WAIT)

    assert run("-m", "jobgate", "ls").returncode == 1  # no token: refused
    listed = run("-m", "jobgate", "ls", "--json", "--limit", "1", JOBGATE_TOKEN=server.token)
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    sdk = run("-c", "import jobgate; c = jobgate.Client(); print(c.get(c.submit("
              "command='true').id).user_name)", JOBGATE_TOKEN=server.token)
    assert sdk.returncode == 0, sdk.stderr
    assert sdk.stdout.strip() == "admin"
