"""jobd: the local cluster's job daemon. Standard library only.

Run as ``python -I -S daemon.py RUNS_DIR``. One daemon per jobgate home starts
and watches every job of the local cluster: a job costs one process spawn and no
interpreter of its own, which is what lets the local cluster launch near the
machine's spawn rate. The daemon lives in its own session, so jobs outlive the
gateway; a gateway that starts again connects to the daemon still running.

The gateway talks to it over ``RUNS_DIR/daemon.sock``, one JSON object a line:

- ``{"op": "launch", "dir": RUN, "launch": {argv, cwd, env, stdout, ...}}``
- ``{"op": "cancel", "dir": RUN}``: SIGTERM, then SIGKILL after kill_wait
- ``{"op": "control", "dir": RUN, "suspended": bool, "time_limit": s}``
- ``{"op": "signal", "dir": RUN, "signal": N}``

(RUN: the path of the run's record) and hears ``{"ended": RUN}`` when a job has
ended. The truth is in files, so that it survives any process. Each run has one
record, ``RUNS_DIR/<job id>.<run>``, of JSON lines: the first names the daemon
and is written before the job starts (the file is created exclusively: a second
launch of the same run finds it and runs nothing); the second is the true wait
status and usage, appended durably when the job ends. A script goes beside it
in ``<run>.script``, a cancel that came before the launch in ``<run>.cancel``.
One record a run, never rewritten: creating a file costs as much as a fork on
some machines, and a record made of a directory, a started file and an exit file
(each written to a temporary name and renamed) cost five. ``daemon.lock`` is
held by the live daemon for its whole life, and ``daemon.json`` names it: a run
started by a daemon that is no longer alive, with no exit line, has been lost.

One thread owns the jobs (orders, reaping, timers); WORKERS threads do the file
system work and the spawns, each run always on the same worker, and hand their
results back through a queue.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

MEMORY_SAMPLE_INTERVAL = 0.5
IDLE_EXIT = 2.0  # seconds without jobs or gateway before the daemon leaves
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
# Threads that write a run's files and spawn its process: creating a file costs
# as much as a fork here, so two jobs' file work overlaps. A run always goes to
# the same thread, which keeps its launch and its exit record in order.
WORKERS = 2
Task = tuple[Path, Callable[[], tuple[Any, ...]]]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def _line(data: dict[str, Any]) -> bytes:
    """One line of a run record, written by one write(): a reader sees a line
    whole once its newline is there."""
    return json.dumps(data).encode() + b"\n"


def _has_exit_line(path: Path) -> bool:
    if path.is_dir():  # a run of a daemon of an earlier release
        return (path / "exit.json").exists()
    return path.read_bytes().count(b"\n") >= 2


def _output(path: str, mode: str) -> BinaryIO:
    """A job's output file, truncated for a first run ("wb"), kept for a
    requeued one ("ab"); appending either way, so that lines written by others
    (notify) land after the job's, never under them."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if mode == "wb" else 0)
    return os.fdopen(os.open(path, flags, 0o644), "ab")


def proc_start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (None if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are plain.
    return int(stat.rsplit(")", 1)[1].split()[19])


def rss_by_process_group() -> dict[int, int]:
    """Resident KiB of every process group on the machine, from one /proc scan."""
    totals: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                group = int(handle.read().rsplit(")", 1)[1].split()[2])
            with open(f"/proc/{entry.name}/statm") as handle:
                pages = int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        totals[group] = totals.get(group, 0) + pages * PAGE_KIB
    return totals


def cgroup_tag(runs_dir: Path) -> str:
    """The name of a home's parent cgroup: two daemons of two homes never meet."""
    return "jobgate-" + hashlib.sha256(str(runs_dir).encode()).hexdigest()[:12]


class MemoryCgroups:
    """Memory limits the kernel enforces: a cgroup of its own for each job that
    has one, made under the daemon's own memory cgroup (cgroup v1, or v2 where
    the daemon may enable the memory controller below its cgroup). A job enters
    its cgroup before it execs, so nothing it starts escapes the limit; going
    past it, the kernel's OOM killer acts at once, where sampling the RSS every
    MEMORY_SAMPLE_INTERVAL would let a fast allocation through first."""

    def __init__(self, parent: Path, version: int) -> None:
        self.parent = parent  # <the daemon's memory cgroup>/jobgate-<home's tag>
        self.version = version

    @classmethod
    def find(cls, tag: str) -> MemoryCgroups | None:
        """The job cgroups' parent, made if need be; None when this machine does
        not let this process make memory cgroups."""
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        found = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            found[controllers] = path
        for controllers, path in found.items():
            if "memory" in controllers.split(","):  # v1
                return cls._made(Path("/sys/fs/cgroup/memory") / path.lstrip("/") / tag, 1)
        own = Path("/sys/fs/cgroup") / found.get("", "/").lstrip("/")
        try:
            if "memory" not in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split():
                return None
            if "memory" not in (own / "cgroup.subtree_control").read_text().split():
                # Refused (EBUSY) while this cgroup holds processes, unless it is the root.
                (own / "cgroup.subtree_control").write_text("+memory")
        except OSError:
            return None
        return cls._made(own / tag, 2)

    @classmethod
    def _made(cls, parent: Path, version: int) -> MemoryCgroups | None:
        try:
            parent.mkdir(exist_ok=True)
            if version == 2:
                (parent / "cgroup.subtree_control").write_text("+memory")
        except OSError:
            return None
        return cls(parent, version)

    def make(self, name: str, limit_kib: int) -> Path:
        """A job's cgroup, its limit set (swap included where the kernel counts it)."""
        path = self.parent / name
        path.mkdir(exist_ok=True)
        limit = str(limit_kib * 1024)
        if self.version == 1:
            (path / "memory.limit_in_bytes").write_text(limit)
            with contextlib.suppress(OSError):  # no swap accounting: no swap limit
                (path / "memory.memsw.limit_in_bytes").write_text(limit)
        else:
            (path / "memory.max").write_text(limit)
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
        return path

    def argv(self, path: Path, argv: list[str]) -> list[str]:
        """`argv`, run by a shell that first moves itself into the cgroup (a
        spawn cannot): the job keeps its pid, and all it starts is inside."""
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(path), *argv]

    def oom_killed(self, path: Path) -> bool:
        """Whether the kernel killed a process of the cgroup for its memory."""
        events = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError, ValueError):
            for line in (path / events).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def remove(self, path: Path) -> None:
        """Remove a job's cgroup; left in place while a process of the job
        lingers (it goes at the daemon's next sweep)."""
        with contextlib.suppress(OSError):
            path.rmdir()

    def sweep(self, leaving: bool = False) -> None:
        """Remove the cgroups of jobs that have ended, and the parent too when
        the daemon leaves with none left."""
        with contextlib.suppress(OSError):
            for path in self.parent.iterdir():
                if path.is_dir():
                    self.remove(path)
        if leaving:
            self.remove(self.parent)


@dataclass
class Run:
    """One running job; its process group id is its pid."""

    path: Path
    launch: dict[str, Any]
    proc: subprocess.Popen[bytes]
    started_mono: float
    start_iso: str
    time_limit: float | None
    memory_limit_kib: int | None
    cancelled: bool = False
    timed_out: bool = False
    out_of_memory: bool = False
    kill_at: float | None = None
    suspended_since: float | None = None
    suspended_total: float = 0.0
    max_rss_kib: int = 0
    cgroup: Path | None = None  # where the kernel enforces its memory limit
    warn: tuple[int, float] | None = None  # sbatch --signal: signal, seconds before the limit

    def warn_at(self) -> float | None:
        """When the --signal warning is due (None: none, or sent)."""
        limit_at = self.limit_at()
        if self.warn is None or limit_at is None:
            return None
        return limit_at - self.warn[1]

    def limit_at(self) -> float | None:
        """When the time limit runs out; suspended time does not count."""
        if self.time_limit is None or self.suspended_since is not None or self.timed_out:
            return None
        return self.started_mono + self.time_limit + self.suspended_total

    def signal(self, signum: int) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)

    def stop(self) -> None:
        """SIGTERM now, SIGKILL after the grace period (Slurm's KillWait)."""
        self.signal(signal.SIGTERM)
        if self.suspended_since is not None:
            self.signal(signal.SIGCONT)  # a stopped job cannot act on SIGTERM
        if self.kill_at is None:
            self.kill_at = time.monotonic() + float(self.launch.get("kill_wait", 10))


class Daemon:
    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self.identity = uuid.uuid4().hex
        self.runs: dict[str, Run] = {}  # by run directory
        self.by_pid: dict[int, Run] = {}
        self.clients: dict[socket.socket, bytes] = {}
        self.selector = selectors.DefaultSelector()
        self.next_sample: float | None = None
        # Runs handed to a worker and not yet running, with the orders that
        # came for them meanwhile (applied once they run).
        self.spawning: dict[str, list[dict[str, Any]]] = {}
        # Children reaped before their worker had reported them.
        self.reaped_early: dict[int, tuple[int, Any, str]] = {}
        self.workers: list[queue.SimpleQueue[Task]] = []
        self.results: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.in_flight = 0  # tasks given to workers whose result is not collected
        self.wake_write = -1
        self.cgroups: MemoryCgroups | None = None

    def serve(self) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.runs_dir / "daemon.lock", "a")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another daemon serves this home
        pid = os.getpid()
        self.cgroups = MemoryCgroups.find(cgroup_tag(self.runs_dir))
        if self.cgroups is not None:
            self.cgroups.sweep()  # left by a daemon that ended before its jobs
        write_json_atomic(self.runs_dir / "daemon.json", {
            "id": self.identity, "pid": pid, "start_ticks": proc_start_ticks(pid),
        })
        path = self.runs_dir / "daemon.sock"
        path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(64)
        server.setblocking(False)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        self.wake_write = wake_write
        for _ in range(WORKERS):
            tasks: queue.SimpleQueue[Task] = queue.SimpleQueue()
            self.workers.append(tasks)
            threading.Thread(target=self._work, args=(tasks,), daemon=True).start()
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for ignored in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(ignored, signal.SIG_IGN)
        self.selector.register(server, selectors.EVENT_READ, "accept")
        self.selector.register(wake_read, selectors.EVENT_READ, "wake")
        idle_since = time.monotonic()
        while True:
            for key, _ in self.selector.select(self._timeout()):
                if key.data == "accept":
                    self._accept(server)
                elif key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_read, 4096)
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]
            try:
                self._collect()
                self._reap()
                self._timers()
            except Exception:  # keep watching the other jobs
                traceback.print_exc()
            if self.runs or self.clients or self.in_flight:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_EXIT:
                # Stop listening first, then take what raced in; leave only when
                # nobody did. A gateway that finds no socket starts a new daemon.
                path.unlink(missing_ok=True)
                self._accept(server)
                if not self.clients:
                    if self.cgroups is not None:
                        self.cgroups.sweep(leaving=True)
                    return
                idle_since = time.monotonic()

    # -- the gateway's connections --------------------------------------------

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except (BlockingIOError, OSError):
                return
            conn.setblocking(True)  # replies are small; a full buffer may block briefly
            self.clients[conn] = b""
            self.selector.register(conn, selectors.EVENT_READ, "client")

    def _read(self, conn: socket.socket) -> None:
        try:
            chunk = conn.recv(1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(conn)
            return
        pending = self.clients[conn] + chunk
        *lines, self.clients[conn] = pending.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                self._handle(conn, json.loads(line))
            except Exception:  # one bad order must not end every job's watch
                traceback.print_exc()

    def _drop(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        self.clients.pop(conn, None)
        conn.close()

    def _tell(self, message: dict[str, Any], only: socket.socket | None = None) -> None:
        data = json.dumps(message).encode() + b"\n"
        for conn in [only] if only is not None else list(self.clients):
            try:
                conn.sendall(data)
            except OSError:
                self._drop(conn)

    def _handle(self, conn: socket.socket, order: dict[str, Any]) -> None:
        key = order.get("dir", "")
        op = order.get("op")
        if op == "launch":
            if key not in self.runs and key not in self.spawning:  # else: never twice
                self.spawning[key] = []
                path, launch = Path(key), order["launch"]
                self._give(path, lambda: self._launch(conn, path, launch))
        elif key in self.spawning:
            self.spawning[key].append(order)
        elif key in self.runs:
            self._apply(self.runs[key], order)
        # else not running here (ended, or never started): nothing to do

    def _apply(self, run: Run, order: dict[str, Any]) -> None:
        op = order.get("op")
        if op == "cancel":
            run.cancelled = True
            run.stop()
        elif op == "signal":
            run.signal(int(order["signal"]))
        elif op == "control":
            self._control(run, order)

    def _control(self, run: Run, order: dict[str, Any]) -> None:
        if "time_limit" in order:
            run.time_limit = order["time_limit"]
        moment = time.monotonic()
        if order.get("suspended") and run.suspended_since is None:
            run.signal(signal.SIGSTOP)
            run.suspended_since = moment
        elif order.get("suspended") is False and run.suspended_since is not None:
            run.signal(signal.SIGCONT)
            run.suspended_total += moment - run.suspended_since
            run.suspended_since = None

    # -- the workers ----------------------------------------------------------

    def _give(self, path: Path, task: Callable[[], tuple[Any, ...]]) -> None:
        self.in_flight += 1
        self.workers[hash(str(path)) % len(self.workers)].put((path, task))

    def _work(self, tasks: queue.SimpleQueue[Task]) -> None:
        while True:
            path, task = tasks.get()
            try:
                result = task()
            except Exception:  # e.g. a full disk: the gateway's probe finds the run
                traceback.print_exc()
                result = ("skipped", path)
            self.results.put(result)
            with contextlib.suppress(BlockingIOError):
                os.write(self.wake_write, b"w")

    def _collect(self) -> None:
        """Take in what the workers did (main thread)."""
        while True:
            try:
                result = self.results.get_nowait()
            except queue.Empty:
                return
            self.in_flight -= 1
            kind, *rest = result
            if kind == "running":
                self._running(*rest)
            elif kind == "ended":
                path, conn = rest
                self.spawning.pop(str(path), None)
                if conn is None or conn in self.clients:
                    self._tell({"ended": str(path)}, only=conn)
            elif kind == "skipped":
                self.spawning.pop(str(rest[0]), None)

    # -- jobs ---------------------------------------------------------------

    def _launch(self, conn: socket.socket, path: Path, launch: dict[str, Any]) -> tuple[Any, ...]:
        """Start a run (worker thread): its record, then its process."""
        start_iso = now_iso()
        try:
            record = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:  # launched before: never twice
            return ("ended", path, conn) if _has_exit_line(path) else ("skipped", path)
        try:
            os.write(record, _line({"daemon": self.identity, "at": start_iso}))
        finally:
            os.close(record)
        if path.with_name(path.name + ".cancel").exists():
            return self._finish(path, start_iso, None, {"cancelled": True, "never_started": True})
        memory = launch.get("memory_limit")
        limit_kib = memory * 1024 if memory else None
        cgroup = self._cgroup_for(path, launch, limit_kib)
        try:
            proc = self._spawn(path, launch, cgroup)
        except Exception as exc:
            return self._finish(path, start_iso, None, {"launch_error": f"{exc}"},
                                cgroup=cgroup)
        return ("running", path, launch, proc, start_iso, time.monotonic(), limit_kib, cgroup)

    def _cgroup_for(self, path: Path, launch: dict[str, Any], limit_kib: int | None
                    ) -> Path | None:
        """The run's memory cgroup, when it has a limit and the machine allows
        one (its RSS is sampled otherwise)."""
        if limit_kib is None or self.cgroups is None or not launch.get("memory_cgroup", True):
            return None
        try:
            return self.cgroups.make(path.name, limit_kib)
        except OSError:
            traceback.print_exc()
            return None

    def _running(self, path: Path, launch: dict[str, Any], proc: subprocess.Popen[bytes],
                 start_iso: str, started_mono: float, limit_kib: int | None,
                 cgroup: Path | None) -> None:
        warn = launch.get("warn_signal")
        run = Run(path=path, launch=launch, proc=proc, started_mono=started_mono,
                  start_iso=start_iso, time_limit=launch.get("time_limit"),
                  memory_limit_kib=limit_kib, cgroup=cgroup,
                  warn=(int(warn[0]), float(warn[1])) if warn else None)
        self.runs[str(path)] = run
        self.by_pid[proc.pid] = run
        if limit_kib is not None and self.next_sample is None:
            self.next_sample = time.monotonic() + MEMORY_SAMPLE_INTERVAL
        for order in self.spawning.pop(str(path), []):
            self._apply(run, order)
        if proc.pid in self.reaped_early:
            self._ended(run, *self.reaped_early.pop(proc.pid))

    def _spawn(self, path: Path, launch: dict[str, Any], cgroup: Path | None
               ) -> subprocess.Popen[bytes]:
        if launch.get("script") is not None:
            path.with_name(path.name + ".script").write_text(launch["script"])
        if launch.get("create_cwd"):
            os.makedirs(launch["cwd"], exist_ok=True)
        mode = launch.get("open_mode", "wb")
        own_cpus = os.sched_getaffinity(0)
        if launch.get("cpus"):
            # A child inherits its parent's CPUs from the first instant: pin
            # ourselves while we spawn, so nothing of the job ever runs elsewhere.
            os.sched_setaffinity(0, launch["cpus"])
        argv = launch["argv"]
        if cgroup is not None and self.cgroups is not None:
            argv = self.cgroups.argv(cgroup, argv)
        try:
            return self._popen(launch, argv, mode)
        finally:
            os.sched_setaffinity(0, own_cpus)

    def _popen(self, launch: dict[str, Any], argv: list[str], mode: str
               ) -> subprocess.Popen[bytes]:
        with _output(launch["stdout"], mode) as out:
            err = out if launch["stderr"] == launch["stdout"] else _output(launch["stderr"], mode)
            try:
                # Its own process group: signals reach the whole job tree, never us.
                proc = subprocess.Popen(
                    argv, cwd=launch["cwd"], env=launch["env"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, process_group=0,
                    restore_signals=True,
                )
            finally:
                if err is not out:
                    err.close()
        return proc

    def _reap(self) -> None:
        while self.by_pid:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = self.by_pid.get(pid)
            if run is None:  # its worker has not reported it yet
                self.reaped_early[pid] = (status, usage, now_iso())
                continue
            self._ended(run, status, usage, now_iso())

    def _ended(self, run: Run, status: int, usage: Any, end_iso: str) -> None:
        pid = run.proc.pid
        del self.by_pid[pid]
        del self.runs[str(run.path)]
        run.proc.returncode = os.waitstatus_to_exitcode(status)
        if run.suspended_since is not None:
            run.suspended_total += time.monotonic() - run.suspended_since
        if run.cgroup is not None and self.cgroups is not None:
            run.out_of_memory = run.out_of_memory or self.cgroups.oom_killed(run.cgroup)
        outcome = {
            "cancelled": run.cancelled,
            "timed_out": run.timed_out,
            "out_of_memory": run.out_of_memory,
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "cpu_user": usage.ru_utime,
            "cpu_system": usage.ru_stime,
            "max_rss_kib": max(usage.ru_maxrss, run.max_rss_kib),
            "suspended_seconds": round(run.suspended_total, 3),
        }
        path, start, cgroup = run.path, run.start_iso, run.cgroup
        self._give(path, lambda: self._finish(path, start, pid, outcome, end_iso, cgroup))

    def _finish(self, path: Path, start: str, pid: int | None, outcome: dict[str, Any],
                end_iso: str | None = None, cgroup: Path | None = None) -> tuple[Any, ...]:
        """Record how a run ended, durably (worker thread); then the gateway is told."""
        record = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(record, _line({"start_time": start, "end_time": end_iso or now_iso(),
                                    "pid": pid, **outcome}))
            os.fsync(record)
        finally:
            os.close(record)
        if cgroup is not None and self.cgroups is not None:
            self.cgroups.remove(cgroup)
        return ("ended", path, None)

    def _timers(self) -> None:
        moment = time.monotonic()
        for run in list(self.runs.values()):
            warn_at = run.warn_at()
            if warn_at is not None and moment >= warn_at and run.warn is not None:
                run.signal(run.warn[0])
                run.warn = None  # once, as Slurm sends it
            limit_at = run.limit_at()
            if run.kill_at is not None and moment >= run.kill_at:
                run.signal(signal.SIGKILL)
                run.kill_at = None
            elif limit_at is not None and moment >= limit_at and not run.cancelled:
                run.timed_out = True
                run.stop()
        if self.next_sample is not None and moment >= self.next_sample:
            self._sample_memory()

    def _sample_memory(self) -> None:
        limited = [run for run in self.runs.values() if run.memory_limit_kib is not None]
        if not limited:
            self.next_sample = None
            return
        self.next_sample = time.monotonic() + MEMORY_SAMPLE_INTERVAL
        rss = rss_by_process_group()
        for run in limited:
            used = rss.get(run.proc.pid, 0)
            run.max_rss_kib = max(run.max_rss_kib, used)
            # In a cgroup the kernel stops the job (an RSS also counts shared
            # file pages, which a cgroup does not): sampled for its figure only.
            if run.cgroup is None and run.memory_limit_kib is not None \
                    and used > run.memory_limit_kib and not run.out_of_memory:
                # Like the kernel's OOM killer: no grace period.
                run.out_of_memory = True
                run.signal(signal.SIGKILL)

    def _timeout(self) -> float:
        deadlines = [t for run in self.runs.values()
                     for t in (run.kill_at, run.warn_at(), run.limit_at()) if t is not None]
        if self.next_sample is not None:
            deadlines.append(self.next_sample)
        if not deadlines:
            return 1.0
        return min(1.0, max(0.0, min(deadlines) - time.monotonic()))


if __name__ == "__main__":
    # Fork once more so that whoever started us can reap us at once: the
    # daemon then belongs to no gateway, and no gateway holds its zombie.
    if os.fork() == 0:
        Daemon(Path(sys.argv[1])).serve()
    os._exit(0)
