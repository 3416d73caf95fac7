"""The gateway's side of the daemon's files (the daemon's side is daemon.py)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jobgate.backends.local.daemon import proc_start_ticks
from jobgate.domain.job import JobUpdate
from jobgate.domain.states import JobState

STATISTICS = ("cpu_user", "cpu_system", "max_rss_kib", "suspended_seconds")
# How long a run record may lack its first line before its daemon counts as gone.
RECORD_WRITE_GRACE = 10.0


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data


def live_daemon(runs_dir: Path) -> str | None:
    """The identity of the daemon serving `runs_dir`, None when none is alive."""
    try:
        fd = os.open(runs_dir / "daemon.lock", os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None  # we got the lock: nobody holds it
    except BlockingIOError:
        pass
    finally:
        os.close(fd)  # drops our probe lock, if we got it
    daemon = read_json(runs_dir / "daemon.json")
    if daemon is None or proc_start_ticks(int(daemon["pid"])) != daemon.get("start_ticks"):
        return None
    return str(daemon["id"])


def read_record(path: Path) -> tuple[str | None, dict[str, Any] | None]:
    """A run record's daemon and exit record (daemon.py writes it): None, None
    while it does not exist; a line not yet ended by a newline is still being
    written and counts as absent ("" for the daemon: started, by whom not yet
    known, until RECORD_WRITE_GRACE has passed)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return _read_legacy(path)
    lines = data.split(b"\n")[:-1]  # what follows the last newline is incomplete
    if not lines:
        # The daemon writes the first line right after creating the file: one
        # still missing a while later was left by a daemon that stopped between.
        young = time.time() - path.stat().st_mtime < RECORD_WRITE_GRACE
        return ("" if young else "(a daemon that stopped before naming itself)"), None
    return str(json.loads(lines[0])["daemon"]), json.loads(lines[1]) if len(lines) > 1 else None


def _read_legacy(path: Path) -> tuple[str | None, dict[str, Any] | None]:
    """A run of a daemon of an earlier release: a directory with started.json
    and exit.json (such a daemon may still be running jobs after an upgrade)."""
    started = read_json(path / "started.json")
    return (None if started is None else str(started["daemon"])), read_json(path / "exit.json")


@dataclass(frozen=True)
class JobDir:
    """The files of one run of a job: its record `<runs>/<job id>.<run>` and,
    beside it, `.script` and `.cancel`."""

    path: Path

    @property
    def job_id(self) -> int:
        return int(self.path.name.split(".")[0])

    @property
    def run(self) -> int:
        return int(self.path.name.split(".")[1])

    @property
    def script_file(self) -> Path:
        return self.path.with_name(self.path.name + ".script")

    @property
    def cancel_file(self) -> Path:
        return self.path.with_name(self.path.name + ".cancel")

    def started_by(self) -> str | None:
        """The daemon that started this run, None while it has not started."""
        return read_record(self.path)[0]

    def running(self, daemon: str | None) -> bool:
        """Whether the run is going on under the live daemon `daemon`."""
        return _running(*read_record(self.path), daemon)

    def ended_or_lost(self, daemon: str | None) -> bool:
        """Whether the run has an exit record, or was started by a daemon that is
        no longer the live one (`daemon`)."""
        started, result = read_record(self.path)
        if result is not None:
            return True
        return started is not None and not _running(started, None, daemon)

    def request_cancel(self) -> None:
        """Cancel however far the run got; a launch still on its way sees this."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cancel_file.touch()

    def outcome(self) -> JobUpdate | None:
        """The run's final update if it has ended, else None."""
        result = read_record(self.path)[1]
        if result is None:
            return None
        return outcome_update(self.job_id, self.run, result)

    def lost_update(self) -> JobUpdate:
        """The daemon that ran it is gone and wrote no exit status."""
        return JobUpdate(self.job_id, JobState.UNKNOWN, run=self.run,
                         reason="job daemon vanished without recording an exit status")


def _running(started: str | None, result: dict[str, Any] | None, daemon: str | None) -> bool:
    # A record whose first line is not written yet ("") is the live daemon's,
    # which is writing it: only a daemon that is gone cannot finish it.
    return daemon is not None and result is None and started in (daemon, "")


def outcome_update(job_id: int, run: int, result: dict[str, Any]) -> JobUpdate:
    """Map the daemon's exit record onto a final state."""
    exit_code = result.get("exit_code")
    signum = result.get("signal")
    if result.get("launch_error"):
        state, reason = JobState.FAILED, f"launch failed: {result['launch_error']}"[:256]
    elif result.get("cancelled"):
        state, reason = JobState.CANCELLED, "cancelled"
    elif result.get("out_of_memory"):
        state, reason = JobState.OUT_OF_MEMORY, "memory limit exceeded"
    elif result.get("timed_out"):
        state, reason = JobState.TIMEOUT, "time limit reached"
    elif exit_code == 0:
        state, reason = JobState.COMPLETED, None
    elif signum is not None:
        state, reason = JobState.FAILED, f"killed by signal {signum} ({_signal_name(signum)})"
    else:
        state, reason = JobState.FAILED, f"exit code {exit_code}"
    start = result.get("start_time")
    end = result.get("end_time")
    started = not result.get("never_started") and not result.get("launch_error")
    return JobUpdate(
        job_id, state, reason=reason,
        start_time=datetime.fromisoformat(start) if start and started else None,
        end_time=datetime.fromisoformat(end) if end else None,
        exit_code=exit_code, exit_code_signal=signum, run=run,
        data={k: result[k] for k in STATISTICS if k in result},
    )


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "unknown"
