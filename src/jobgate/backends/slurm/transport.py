"""How the Slurm backend talks to a cluster: the CLI transport (sbatch, squeue,
scontrol, scancel, sacct, sinfo, sstat on this host) behind one small interface
that a REST transport (slurmrestd) can implement too.

Processes are run by an injected `Runner`, so tests can hand in a fake one.
Errors are classified: a command the cluster refused raises `SlurmRefused`
(permanent: the request is wrong, or the job is not in a state for it); one that
could not reach the controller raises `SlurmUnreachable` (transient: try again).
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jobgate.backends.slurm import commands
from jobgate.backends.slurm.parsing import (
    Partition,
    SlurmJob,
    parse_partitions,
    parse_sacct_text,
    parse_sinfo,
    parse_squeue,
    parse_squeue_text,
    parse_sstat,
)
from jobgate.errors import BackendError, ConflictError


class SlurmUnreachable(BackendError):
    """The controller (or the accounting daemon) did not answer: try again later."""

    code = "cluster_unreachable"
    transient = True


class SlurmRefused(BackendError):
    """Slurm understood the request and refused it."""

    code = "cluster_refused"
    transient = False


class AccountingUnavailable(BackendError):
    """The cluster keeps no accounting (no slurmdbd): sacct cannot help."""

    code = "no_accounting"
    transient = False


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    def __call__(self, argv: Sequence[str], *, timeout: float,
                 env: Mapping[str, str] | None = None, input: str | None = None) -> Completed:
        """Run argv (`input` on its standard input); raise SlurmUnreachable when
        it takes longer than `timeout`."""


def run_process(argv: Sequence[str], *, timeout: float,
                env: Mapping[str, str] | None = None, input: str | None = None) -> Completed:
    """The real runner.

    Raises:
        SlurmUnreachable: the command timed out (it is killed).
        BackendError: the command is not installed here.
    """
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              env=dict(env) if env is not None else None, input=input,
                              stdin=subprocess.DEVNULL if input is None else None,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise SlurmUnreachable(f"{argv[0]} did not answer within {timeout:g}s") from exc
    except FileNotFoundError as exc:
        raise BackendError(f"{argv[0]} is not installed on this host (Slurm's "
                           "client commands are needed for transport 'cli')") from exc
    return Completed(done.returncode, done.stdout, done.stderr)


# Words of Slurm's client errors that mean "could not talk to the daemon".
_UNREACHABLE = (
    "unable to contact slurm controller", "socket timed out", "connection refused",
    "zero bytes were transmitted", "temporarily unable", "resource temporarily unavailable",
    "communication connection failure", "unable to connect", "slurm_persist_conn_open",
    "problem talking to the database", "transport endpoint", "connection reset",
)
_GONE = ("invalid job id", "already completing or completed", "job is no longer pending",
         "job is pending execution", "job not running", "is not running",
         "job is not suspended", "job has already finished",
         "requested operation is presently disabled")
_NO_ACCOUNTING = ("accounting storage is disabled", "not configured with slurmdbd",
                  "slurmdbd is not running", "accounting_storage/none")


def sbatch_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment to run Slurm's commands in: `base` less what would change
    what sbatch does (SBATCH_*, SLURM_* but SLURM_CONF, ...) or leak jobgate's
    settings. sbatch passes it on to the job (--export=ALL)."""
    drop = ("JOBGATE_", "SBATCH_", "SALLOC_", "SRUN_", "SLURM_")
    env = {k: v for k, v in base.items() if not k.startswith(drop)}
    if "SLURM_CONF" in base:
        env["SLURM_CONF"] = base["SLURM_CONF"]
    return env


class Transport(Protocol):
    """What the backend needs from a cluster; the CLI and REST transports both
    offer it."""

    def submit(self, script: str) -> str: ...
    def queue(self, comment_prefix: str = "") -> list[SlurmJob]: ...
    def ended_since(self, seconds_ago: int, native_ids: Sequence[str]) -> list[SlurmJob]: ...
    def cancel(self, native_id: str) -> None: ...
    def signal(self, native_id: str, signal_name: str) -> None: ...
    def control(self, verb: str, native_id: str) -> None: ...
    def set_time_limit(self, native_id: str, seconds: int | None) -> None: ...
    def batch_script(self, native_id: str) -> str: ...
    def usage(self, native_id: str, running: bool) -> dict[str, Any]: ...
    def partitions(self) -> list[Partition]: ...
    def nodes(self) -> list[dict[str, Any]]: ...


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


class CliTransport:
    """Slurm's client commands on this host."""

    def __init__(self, runner: Runner = run_process, *, env: Mapping[str, str] | None = None,
                 timeout: float = 30.0) -> None:
        self.runner = runner
        self.env = sbatch_environment(os.environ if env is None else env)
        self.timeout = timeout
        # The jobs of the last text squeue by their fields, per prefix asked for
        # (parse_squeue_text): an unchanged job is not read again.
        self._squeue_memo: dict[str, dict[tuple[str, ...], SlurmJob]] = {}
        self._squeue_lock = threading.Lock()
        # Who owns the jobs sbatch submits from here (None: no name for the uid).
        self.job_owner = _user_name(os.geteuid())

    def _run(self, argv: list[str], *, env: Mapping[str, str] | None = None,
             input: str | None = None) -> str:
        done = self.runner(argv, timeout=self.timeout, env=env or self.env, input=input)
        if done.returncode == 0:
            return done.stdout
        message = (done.stderr or done.stdout).strip().replace("\n", " ")[:500] \
            or f"exit status {done.returncode}"
        lowered = message.lower()
        what = f"{argv[0]} {' '.join(argv[1:2])}".strip()
        if any(word in lowered for word in _NO_ACCOUNTING):
            raise AccountingUnavailable(f"{what}: {message}")
        if any(word in lowered for word in _GONE):
            raise ConflictError(f"{what}: {message}")
        if any(word in lowered for word in _UNREACHABLE):
            raise SlurmUnreachable(f"{what}: {message}")
        raise SlurmRefused(f"{what}: {message}")

    def submit(self, script: str) -> str:
        """Submit a batch script (on sbatch's standard input: no file); the job's id.

        Raises:
            SlurmRefused: sbatch rejected the job (the message says why).
            SlurmUnreachable: no answer; the job may or may not exist.
        """
        out = self._run(commands.sbatch(), input=script).strip()
        native_id = out.split(";")[0].strip()
        if not native_id.isdigit():
            raise SlurmRefused(f"sbatch: unexpected answer {out[:200]!r}")
        return native_id

    def queue(self, comment_prefix: str = "") -> list[SlurmJob]:
        """The cluster's jobs whose comment starts with `comment_prefix`. Asked
        for some (a gateway's own), squeue's text form, a few fields (JSON costs
        squeue 20-50 times the CPU); asked for all (importing outside jobs),
        the JSON objects whole, which the importer reads."""
        if not comment_prefix:
            return parse_squeue(self._run(commands.squeue()), comment_prefix)
        separator = f"~{secrets.token_hex(6)}~"
        env = {**self.env, "SLURM_TIME_FORMAT": "%s"}
        text = self._run(commands.squeue_text(separator, self.job_owner), env=env)
        with self._squeue_lock:
            memo = self._squeue_memo.setdefault(comment_prefix, {})
            return parse_squeue_text(text, separator, comment_prefix, memo)

    def ended_since(self, seconds_ago: int, native_ids: Sequence[str] = ()) -> list[SlurmJob]:
        env = {**self.env, "SLURM_TIME_FORMAT": "%s"}
        return parse_sacct_text(self._run(commands.sacct_since(seconds_ago, native_ids),
                                          env=env))

    def cancel(self, native_id: str) -> None:
        self._run(commands.scancel(native_id))

    def signal(self, native_id: str, signal_name: str) -> None:
        self._run(commands.send_signal(native_id, signal_name))

    def control(self, verb: str, native_id: str) -> None:
        self._run(commands.scontrol(verb, native_id))

    def set_time_limit(self, native_id: str, seconds: int | None) -> None:
        self._run(commands.update_time_limit(native_id, seconds))

    def batch_script(self, native_id: str) -> str:
        return self._run(commands.batch_script(native_id))

    def usage(self, native_id: str, running: bool) -> dict[str, Any]:
        if running:
            return parse_sstat(self._run(commands.sstat(native_id)))
        env = {**self.env, "SLURM_TIME_FORMAT": "%s"}
        lines = self._run(commands.sacct_usage(native_id), env=env).splitlines()
        return {"steps": [dict(zip(("step", "state", "elapsed", "total_cpu", "user_cpu",
                                    "system_cpu", "max_rss"), line.split("|"), strict=False))
                          for line in lines if line.strip()]}

    def partitions(self) -> list[Partition]:
        return parse_partitions(self._run(commands.partitions()))

    def nodes(self) -> list[dict[str, Any]]:
        return parse_sinfo(self._run(commands.sinfo()))
