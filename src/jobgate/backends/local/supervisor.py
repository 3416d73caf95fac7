"""Launcher and per-job supervisor of the local cluster. Standard library only.

Run as ``python -I -S supervisor.py``: it reads one launch per line on stdin,
``{"dir": <run dir>, "launch": {argv, cwd, env, output files, limits, script}}``,
and forks a supervisor for each (a fork costs about a millisecond, where a fresh
interpreter per job costs tens; the launch travels in memory, so the gateway
writes no file to launch a job). It writes ``{"ended": <run dir>}`` on stdout
when a supervisor it forked exits, and exits itself at end of input; the
supervisors live on in their own sessions, so jobs survive the gateway.

A supervisor owns one run directory, which it creates:

- ``script``        the batch script, when the job has one
- ``supervisor.lock`` flock held for the supervisor's whole life (liveness that
  is safe against pid reuse: a lock dies with its holder)
- ``started.json``  written once, before the job runs: pid and /proc start time
- ``cancel``        created by the gateway to cancel a job not yet started
- ``exit.json``     written atomically when the job ended: the true wait status

A second supervisor for the same directory finds ``started.json`` under the
lock and leaves without running anything, so a job never runs twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def write_json_atomic(path: Path, data: dict[str, Any], *, durable: bool = False) -> None:
    """Readers see the old file or the new one, never half of one. `durable` also
    survives a power cut, which only the exit status needs: anything else a
    restart can redo or reports as lost."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def proc_start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (None if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are plain.
    return int(stat.rsplit(")", 1)[1].split()[19])


MEMORY_SAMPLE_INTERVAL = 0.5
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class Supervisor:
    """Runs one job and records how it ended. Signals drive it:

    SIGTERM   cancel (or requeue): SIGTERM to the job, SIGKILL after kill_wait
    SIGUSR1   re-read control.json: suspend/resume and a new time limit
    SIGALRM   its own timer: time limit, SIGKILL escalation, memory sampling
    """

    def __init__(self, job_dir: Path, launch: dict[str, Any]) -> None:
        self.job_dir = job_dir
        self.launch = launch
        self.child: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self.timed_out = False
        self.out_of_memory = False
        self.kill_at: float | None = None
        self.time_limit: float | None = self.launch.get("time_limit")
        self.memory_limit_kib: int | None = (
            self.launch["memory_limit"] * 1024 if self.launch.get("memory_limit") else None
        )
        self.started_mono = 0.0
        self.suspended_since: float | None = None
        self.suspended_total = 0.0
        self.next_sample: float | None = None
        self.max_tree_rss_kib = 0

    def run(self) -> None:
        self.job_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.job_dir / "supervisor.lock", "a")  # noqa: SIM115 - held until exit
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (self.job_dir / "started.json").exists():
            return  # another supervisor ran (or runs) this job
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(signal.SIGUSR1, self._on_control)
        pid = os.getpid()
        write_json_atomic(self.job_dir / "started.json", {
            "pid": pid, "start_ticks": proc_start_ticks(pid), "at": now_iso(),
        })
        start = now_iso()
        if (self.job_dir / "cancel").exists() or self.cancelled:
            self._finish(start, None, {"cancelled": True, "never_started": True})
            return
        self.started_mono = time.monotonic()
        if self.launch.get("script") is not None:
            (self.job_dir / "script").write_text(self.launch["script"])
        self.child = self._spawn()
        write_json_atomic(self.job_dir / "child.json", {"pid": self.child.pid})
        if self.memory_limit_kib is not None:
            self.next_sample = time.monotonic() + MEMORY_SAMPLE_INTERVAL
        self._on_control(0, None)  # a control written before we started
        if self.cancelled:  # SIGTERM arrived while spawning
            self._stop_child()
        self._arm()
        _, status, usage = os.wait4(self.child.pid, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.child.returncode = os.waitstatus_to_exitcode(status)
        outcome: dict[str, Any] = {
            "cancelled": self.cancelled,
            "timed_out": self.timed_out,
            "out_of_memory": self.out_of_memory,
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "cpu_user": usage.ru_utime,
            "cpu_system": usage.ru_stime,
            "max_rss_kib": max(usage.ru_maxrss, self.max_tree_rss_kib),
            "suspended_seconds": round(self.suspended_total, 3),
        }
        self._finish(start, self.child.pid, outcome)

    def _spawn(self) -> subprocess.Popen[bytes]:
        launch = self.launch
        if launch.get("cpus"):
            # Inherited by the job: it runs on its allocated cores only.
            os.sched_setaffinity(0, launch["cpus"])
        with open(launch["stdout"], launch.get("open_mode", "wb")) as out:
            err = (out if launch["stderr"] == launch["stdout"]
                   else open(launch["stderr"], launch.get("open_mode", "wb")))  # noqa: SIM115
            try:
                # Its own process group, so signals reach the whole job tree and
                # never this supervisor.
                return subprocess.Popen(
                    launch["argv"], cwd=launch["cwd"], env=launch["env"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, process_group=0,
                    restore_signals=True,
                )
            finally:
                if err is not out:
                    err.close()

    def _finish(self, start: str, pid: int | None, outcome: dict[str, Any]) -> None:
        write_json_atomic(self.job_dir / "exit.json", {
            "start_time": start, "end_time": now_iso(), "pid": pid, **outcome,
        }, durable=True)

    def _on_term(self, _signum: int, _frame: Any) -> None:
        self.cancelled = True
        if self.child is not None:
            self._stop_child()

    def _on_control(self, _signum: int, _frame: Any) -> None:
        try:
            control = json.loads((self.job_dir / "control.json").read_text())
        except FileNotFoundError:
            return
        if "time_limit" in control:
            self.time_limit = control["time_limit"]
        moment = time.monotonic()
        if control.get("suspended") and self.suspended_since is None:
            self._signal_child(signal.SIGSTOP)
            self.suspended_since = moment
        elif not control.get("suspended") and self.suspended_since is not None:
            self._signal_child(signal.SIGCONT)
            self.suspended_total += moment - self.suspended_since
            self.suspended_since = None
        self._arm()

    def _limit_at(self) -> float | None:
        """When the time limit runs out; suspended time does not count."""
        if self.time_limit is None or self.suspended_since is not None or self.timed_out:
            return None
        return self.started_mono + self.time_limit + self.suspended_total

    def _on_alarm(self, _signum: int, _frame: Any) -> None:
        moment = time.monotonic()
        limit_at = self._limit_at()
        if self.kill_at is not None and moment >= self.kill_at:
            self._signal_child(signal.SIGKILL)
            self.kill_at = None
        elif limit_at is not None and moment >= limit_at and not self.cancelled:
            self.timed_out = True
            self._stop_child()
        if self.next_sample is not None and moment >= self.next_sample:
            self._sample_memory()
            self.next_sample = moment + MEMORY_SAMPLE_INTERVAL
        self._arm()

    def _sample_memory(self) -> None:
        rss = tree_rss_kib(os.getpid())
        self.max_tree_rss_kib = max(self.max_tree_rss_kib, rss)
        if self.memory_limit_kib is not None and rss > self.memory_limit_kib \
                and not self.out_of_memory:
            # Like the kernel's OOM killer: no grace period.
            self.out_of_memory = True
            self._signal_child(signal.SIGKILL)

    def _stop_child(self) -> None:
        """SIGTERM now, SIGKILL after the grace period (Slurm's KillWait)."""
        self._signal_child(signal.SIGTERM)
        if self.suspended_since is not None:
            self._signal_child(signal.SIGCONT)  # a stopped job cannot act on SIGTERM
        if self.kill_at is None:
            self.kill_at = time.monotonic() + float(self.launch.get("kill_wait", 10))
        self._arm()

    def _signal_child(self, signum: int) -> None:
        if self.child is not None and self.child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signum)

    def _arm(self) -> None:
        deadlines = [t for t in (self.kill_at, self._limit_at(), self.next_sample)
                     if t is not None]
        delay = max(0.001, min(deadlines) - time.monotonic()) if deadlines else 0
        signal.setitimer(signal.ITIMER_REAL, delay)


def tree_rss_kib(session_id: int) -> int:
    """Resident memory of every process in a session but its leader (the job tree)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == session_id:
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != session_id:
                continue
            with open(f"/proc/{entry.name}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE_KIB
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total


def supervise(job_dir: Path, launch: dict[str, Any]) -> None:
    """Entry point of a forked supervisor: detach, run the job, leave."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Drop the launcher's pipes so the gateway sees them close when it should.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    try:
        Supervisor(job_dir, launch).run()
    except Exception as exc:
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "supervisor.error").write_text(f"{type(exc).__name__}: {exc}\n")


def launcher() -> None:
    """Fork a supervisor per launch read on stdin; report their exits."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    children: dict[int, str] = {}
    stdin = sys.stdin.buffer
    pending = b""
    while True:
        ready, _, _ = select.select([stdin, wake_read], [], [], 1.0)
        if wake_read in ready:
            os.read(wake_read, 4096)
        if stdin in ready:
            chunk = os.read(stdin.fileno(), 1 << 20)
            if not chunk:
                return  # the gateway is gone: the supervisors go on without us
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    order = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        supervise(Path(order["dir"]), order["launch"])
                        os._exit(0)
                    children[pid] = order["dir"]
        _reap(children)


def _reap(children: dict[int, str]) -> None:
    while children:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        job_dir = children.pop(pid, None)
        if job_dir is not None:
            sys.stdout.write(json.dumps({"ended": job_dir}) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    launcher()
