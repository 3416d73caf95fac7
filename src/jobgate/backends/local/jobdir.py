"""The gateway's side of a job directory (the supervisor's side is supervisor.py)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jobgate.backends.local.supervisor import proc_start_ticks, write_json_atomic
from jobgate.domain.job import JobUpdate
from jobgate.domain.states import JobState

STATISTICS = ("cpu_user", "cpu_system", "max_rss_kib", "suspended_seconds")


@dataclass(frozen=True)
class JobDir:
    """The supervisor's files of one run of a job: `<runs>/<job id>.<run>`."""

    path: Path

    @property
    def job_id(self) -> int:
        return int(self.path.name.split(".")[0])

    @property
    def run(self) -> int:
        return int(self.path.name.split(".")[1])

    @property
    def exit_file(self) -> Path:
        return self.path / "exit.json"

    @property
    def started_file(self) -> Path:
        return self.path / "started.json"

    def supervisor_alive(self) -> bool:
        """Whether a supervisor holds this directory's lock right now."""
        try:
            fd = os.open(self.path / "supervisor.lock", os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops our probe lock, if we got it
        return False

    def started(self) -> bool:
        return self.started_file.exists()

    def read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return data

    def signal_supervisor(self, signum: int) -> bool:
        """Signal the live supervisor; False when there is none to signal."""
        started = self.read_json(self.started_file)
        if started is None or not self.supervisor_alive():
            return False
        pid = int(started["pid"])
        # The start time guards against a recycled pid.
        if proc_start_ticks(pid) != started.get("start_ticks"):
            return False
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True

    def child_pid(self) -> int | None:
        child = self.read_json(self.path / "child.json")
        return int(child["pid"]) if child else None

    def signal_job(self, signum: int) -> bool:
        """Signal the job's whole process group while its supervisor lives."""
        pid = self.child_pid()
        if pid is None or not self.supervisor_alive():
            return False
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            return False
        return True

    def control(self, **changes: Any) -> bool:
        """Change what the supervisor enforces (suspended, time_limit); False if it is gone."""
        current = self.read_json(self.path / "control.json") or {}
        write_json_atomic(self.path / "control.json", current | changes)
        return self.signal_supervisor(signal.SIGUSR1)

    def request_cancel(self) -> None:
        """Cancel however far the job got: before its start, or while it runs."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "cancel").touch()
        self.signal_supervisor(signal.SIGTERM)

    def outcome(self) -> JobUpdate | None:
        """The run's final update if it has ended, else None (probe the lock first)."""
        result = self.read_json(self.exit_file)
        if result is None:
            return None
        return outcome_update(self.job_id, self.run, result)

    def lost_update(self) -> JobUpdate:
        """The supervisor is gone and wrote no exit status."""
        error_file = self.path / "supervisor.error"
        if error_file.exists():
            return JobUpdate(self.job_id, JobState.FAILED, run=self.run,
                             reason=f"launch failed: {error_file.read_text().strip()}"[:256])
        return JobUpdate(self.job_id, JobState.UNKNOWN, run=self.run,
                         reason="supervisor vanished without recording an exit status")


def outcome_update(job_id: int, run: int, result: dict[str, Any]) -> JobUpdate:
    """Map a supervisor's exit record onto a final state."""
    exit_code = result.get("exit_code")
    signum = result.get("signal")
    if result.get("cancelled"):
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
    return JobUpdate(
        job_id, state, reason=reason,
        start_time=datetime.fromisoformat(start) if start and not result.get("never_started")
        else None,
        end_time=datetime.fromisoformat(end) if end else None,
        exit_code=exit_code, exit_code_signal=signum, run=run,
        data={k: result[k] for k in STATISTICS if k in result},
    )


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "unknown"
