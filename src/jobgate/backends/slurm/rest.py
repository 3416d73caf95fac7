"""The REST transport: the CLI transport's verbs through slurmrestd 22.05
(openapi v0.0.38 and dbv0.0.38) with JWT authentication, over httpx.

What differs from the CLI, as a real 22.05.8 slurmrestd behaves:

- Jobs run as the token's user (the X-SLURM-USER-NAME header), never as root:
  slurmrestd refuses root's tokens. The backend hands each run's directory to
  that user (`job_user`).
- `#SBATCH` lines in a submitted script are not read. The options jobgate wrote
  there are sent as the job description instead (the same option parser as
  sbatch reads them, so values keep sbatch's syntax); the script goes as it is.
- Errors come as `errors[]` entries with Slurm's error number, mostly under HTTP
  500 whatever the cause. On reads, a refused token and an unreachable
  controller look the same (-1, "Unspecified error"): the token is fetched again
  once, then the failure counts as unreachable (transient; nothing is concluded).
- A signal (DELETE /job/{id}?signal=, which slurmrestd sends with
  KILL_FULL_JOB) reached the batch script's process group as `scancel --batch`
  does (measured: a process of the job in a session of its own did not get it),
  so the wrapper passes it on once, as with the CLI. Signalling a job that has
  ended "succeeds": the job's state is read first.
- v0.0.38 has no suspend/resume: those verbs are in `missing_verbs`, which the
  backend leaves out of its capabilities. Nor has it Slurm's requeue, its copy
  of the batch script or sstat: `control("requeue")`, `batch_script` and a
  running job's `usage` are refused (jobgate requeues by a new run, and serves a
  job's script and stats from its own records: none of these is used there).
- A hold (priority 0) is placed as the token's user, so Slurm records a user
  hold; an admin hold of a job in Slurm's queue needs transport "cli".
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from jobgate.backends.slurm.commands import FINAL_STATE_CODES
from jobgate.backends.slurm.parsing import (
    Partition,
    SlurmJob,
    job_from_sacct,
    job_from_squeue,
    parse_sinfo,
)
from jobgate.backends.slurm.rest_tokens import TokenSource, jwt_claims, token_source
from jobgate.backends.slurm.transport import (
    _GONE,
    _NO_ACCOUNTING,
    _UNREACHABLE,
    AccountingUnavailable,
    SlurmRefused,
    SlurmUnreachable,
)
from jobgate.config import ClusterConfig
from jobgate.domain.parsing import parse_warn_signal
from jobgate.domain.spec import JobSpec
from jobgate.errors import BackendError, ConflictError, UnsupportedError, VerbNotSupportedError

log = logging.getLogger(__name__)

API = "/slurm/v0.0.38"
DB = "/slurmdb/v0.0.38"

# Slurm's error numbers (slurm_errno.h) that slurmrestd passes on.
INVALID_JOB_ID = 2017
ALREADY_DONE = 2021
ACCESS_DENIED = 2002
JOB_FINISHED = 2084
JOB_HELD = 2042  # a submission with hold: the job exists, held
NOTHING_FOUND = 9003  # slurmdb: no job matched the query
UNSPECIFIED = -1
_GONE_NUMBERS = frozenset({INVALID_JOB_ID, ALREADY_DONE, JOB_FINISHED})

# The sbatch options jobgate writes (commands.sbatch_options) and their keys in
# v0.0.38's job description. Values are sent as sbatch reads them ("100M",
# "00:10:00"): slurmrestd parses them with sbatch's own option code.
OPTION_KEYS: Mapping[str, str] = {
    "--job-name": "name", "--comment": "comment", "--chdir": "current_working_directory",
    "--output": "standard_output", "--error": "standard_error", "--open-mode": "open_mode",
    "--partition": "partition", "--nodes": "nodes", "--ntasks": "tasks",
    "--cpus-per-task": "cpus_per_task", "--account": "account", "--mem": "memory_per_node",
    "--mem-per-cpu": "memory_per_cpu", "--gpus": "gpus", "--time": "time_limit",
    "--qos": "qos", "--mail-type": "mail_type", "--mail-user": "mail_user",
    "--signal": "signal", "--constraint": "constraints", "--reservation": "reservation",
}
# sbatch's flags (no value) and what they set in the job description (v0.0.38
# takes exclusive as a string: "true", "user" or "mcs").
FLAG_KEYS: Mapping[str, tuple[str, bool | str]] = {
    "--requeue": ("requeue", True), "--no-requeue": ("requeue", False),
    "--exclusive": ("exclusive", "true"),
}
# What a REST job's environment takes from the gateway's (sbatch --export=ALL
# would pass it all, but the job runs as another user, maybe on another host).
PASSED_VARIABLES = ("PATH", "LANG", "LANGUAGE", "TZ")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


# -- answers ---------------------------------------------------------------------


class _TokenSuspect(Exception):
    """A failure that a refused token would explain: fetch it again and retry once."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(error.message)
        self.error = error


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for entry in errors:
        description = str(entry.get("description") or "").strip()
        error = str(entry.get("error") or "").strip()
        if description and error and error.lower() not in description.lower():
            parts.append(f"{description} ({error})")
        else:
            parts.append(description or error or json.dumps(dict(entry)))
    return "; ".join(parts)[:500]


def error_numbers(errors: Sequence[Mapping[str, Any]]) -> set[int]:
    numbers = set()
    for entry in errors:
        number = entry.get("error_number", entry.get("error_code"))
        if isinstance(number, int):
            numbers.add(number)
    return numbers


def classify(errors: Sequence[Mapping[str, Any]], what: str, status: int,
             user: str = "") -> BackendError | ConflictError:
    """The jobgate error for slurmrestd's `errors[]` (as CliTransport classifies
    the words of Slurm's commands, plus Slurm's error numbers)."""
    message = f"{what}: {describe_errors(errors)}"
    lowered = message.lower()
    numbers = error_numbers(errors)
    if numbers & _GONE_NUMBERS or any(word in lowered for word in _GONE):
        return ConflictError(message)
    if any(word in lowered for word in _NO_ACCOUNTING):
        return AccountingUnavailable(message)
    if any(word in lowered for word in _UNREACHABLE):
        return SlurmUnreachable(message)
    if numbers == {UNSPECIFIED} and status >= 500:
        return SlurmUnreachable(f"{message}: the controller did not answer slurmrestd, or "
                                f"slurmrestd refused the token{f' for {user}' if user else ''}")
    if ACCESS_DENIED in numbers and user:
        message += (f" (slurmrestd acts as the Slurm user {user}, who may only lower a "
                    "job's time limit and release its own holds)")
    return SlurmRefused(message)


def checked(response: httpx.Response, what: str, user: str = "") -> dict[str, Any]:
    """slurmrestd's JSON answer, or the error it means.

    Raises:
        _TokenSuspect: 401, or a bare "Unspecified error" (fetch the token again).
        ConflictError: the job is gone or done.
        AccountingUnavailable: slurmrestd serves no slurmdb API.
        SlurmUnreachable: the controller (or slurmrestd) did not answer.
        SlurmRefused: Slurm refused the request.
    """
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if status == 401:
        raise _TokenSuspect(SlurmRefused(
            f"{what}: slurmrestd refused the credentials ({response.text.strip()[:100]}): "
            "check rest_user and the token"))
    errors = [e for e in (body.get("errors") or []) if isinstance(e, dict)] \
        if isinstance(body, dict) else []
    path = response.request.url.path
    if status == 404 and not errors:
        if path.startswith("/slurmdb/"):
            raise AccountingUnavailable(f"{what}: slurmrestd serves no {path} (it runs "
                                        "without openapi/dbv0.0.38, or without slurmdbd)")
        raise SlurmRefused(f"{what}: slurmrestd serves no {path} (it must load "
                           "openapi/v0.0.38)")
    if errors and (status >= 400 or not _tolerated(errors)):
        error = classify(errors, what, status, user)
        if error_numbers(errors) == {UNSPECIFIED} and isinstance(error, SlurmUnreachable):
            raise _TokenSuspect(error)
        raise error
    if status >= 500:
        raise SlurmUnreachable(f"{what}: slurmrestd answered {status}")
    if status >= 400:
        raise SlurmRefused(f"{what}: slurmrestd answered {status}: {response.text[:200]}")
    if not isinstance(body, dict):
        raise SlurmUnreachable(f"{what}: slurmrestd's answer is not JSON "
                               f"({response.text[:100]!r})")
    return body


def _tolerated(errors: Sequence[Mapping[str, Any]]) -> bool:
    """Entries a successful answer may carry: a held submission, an empty
    slurmdb query."""
    return error_numbers(errors) <= {JOB_HELD, NOTHING_FOUND}


# -- jobs ------------------------------------------------------------------------


def sbatch_directives(script: str) -> list[tuple[str, str]]:
    """The `#SBATCH --option=value` lines at the top of a script, as sbatch
    reads them (up to the first line that is not a comment)."""
    found = []
    for line in script.splitlines()[1:]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            option, _, value = stripped.removeprefix("#SBATCH").strip().partition("=")
            found.append((option, value))
    return found


def job_description(script: str, environment: Mapping[str, str]) -> dict[str, Any]:
    """v0.0.38's job description for a script jobgate generated: its `#SBATCH`
    options, and the environment (slurmrestd needs one: nothing is exported).

    Raises:
        SlurmRefused: an option with no counterpart here (jobgate wrote it, so
            this is a bug to report, not the user's doing).
    """
    job: dict[str, Any] = {}
    for option, value in sbatch_directives(script):
        if option == "--export":
            if value != "ALL":
                raise SlurmRefused(f"submit: --export={value} has no slurmrestd counterpart")
            continue  # the environment below is the whole of it
        if option in FLAG_KEYS:
            flag, setting = FLAG_KEYS[option]
            job[flag] = setting
            continue
        key = OPTION_KEYS.get(option)
        if key is None:
            raise SlurmRefused(f"submit: the option {option} has no slurmrestd counterpart")
        job[key] = _rest_signal(value) if option == "--signal" else value
    env = dict(environment)
    # What sbatch adds to the job's environment from its options.
    if "cpus_per_task" in job:
        env["SLURM_CPUS_PER_TASK"] = job["cpus_per_task"]
    if "current_working_directory" in job:
        env["SLURM_SUBMIT_DIR"] = job["current_working_directory"]
    env.setdefault("SLURM_SUBMIT_HOST", socket.gethostname())
    job["environment"] = env
    return job


def _rest_signal(value: str) -> str:
    """--signal as slurmrestd reads it: the signal by number (it refuses a name,
    "Invalid SIGNAL specification", where sbatch takes both; flags are refused
    at submit, RestTransport.check_spec)."""
    warn = parse_warn_signal(value)
    return f"{warn.signum}@{warn.seconds}"


def user_environment(base: Mapping[str, str], user: str) -> dict[str, str]:
    """The environment a REST job starts with: the gateway's PATH and locale,
    and the home and names of the user it runs as (when this host knows them)."""
    env = {k: base[k] for k in PASSED_VARIABLES if base.get(k)}
    env |= {k: v for k, v in base.items() if k.startswith("LC_")}
    env.setdefault("PATH", DEFAULT_PATH)
    env |= {"USER": user, "LOGNAME": user}
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return env
    return env | {"HOME": entry.pw_dir, "SHELL": entry.pw_shell or "/bin/sh"}


def _limit(value: Any) -> int | None:
    """A v0.0.38 limit: -1, null or Slurm's INFINITE/NO_VAL mean none."""
    if isinstance(value, dict):
        value = value.get("number") if value.get("set", True) and \
            not value.get("infinite", False) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 \
            or value >= 0xFFFFFFFE:
        return None
    return value


def partitions_from(body: Mapping[str, Any]) -> list[Partition]:
    """GET /partitions, with the limits `scontrol show partition` gives the CLI
    transport (parsing.parse_partitions): times in seconds, memory in MiB."""
    found = []
    for raw in body.get("partitions") or []:
        total_cpus = _limit(raw.get("total_cpus")) or 0
        total_nodes = _limit(raw.get("total_nodes")) or 0
        max_nodes = _limit(raw.get("maximum_nodes_per_job"))
        per_node_cpus = _limit(raw.get("maximum_cpus_per_node"))
        nodes = min(n for n in (max_nodes, total_nodes) if n is not None) \
            if total_nodes else max_nodes
        cpus = total_cpus or None
        if per_node_cpus is not None and nodes:
            cpus = min(cpus or per_node_cpus * nodes, per_node_cpus * nodes)
        per_node_memory = _limit(raw.get("maximum_memory_per_node"))
        max_time, default_time = (_limit(raw.get(k)) for k in ("max_time_limit",
                                                                "default_time_limit"))
        found.append(Partition(
            name=str(raw["name"]), default="default" in (raw.get("flags") or []),
            up=str(raw.get("state") or "UP").upper() == "UP",
            max_time=max_time * 60 if max_time is not None else None,
            default_time=default_time * 60 if default_time is not None else None,
            total_cpus=total_cpus, total_nodes=total_nodes, max_cpus_per_job=cpus,
            max_memory_per_job=per_node_memory * nodes if per_node_memory and nodes else None,
            priority_tier=_limit(raw.get("priority_tier")) or 0,
        ))
    return found


def _clock(seconds: int) -> str:
    """sacct's [D-]HH:MM:SS."""
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def _cpu_time(value: Any) -> str:
    """sacct's CPU times: MM:SS.mmm under an hour, else [D-]HH:MM:SS."""
    if not isinstance(value, dict):
        return ""
    seconds = int(value.get("seconds") or 0)
    micros = int(value.get("microseconds") or 0)
    if seconds >= 3600:
        return _clock(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}.{micros // 1000:03d}"


def usage_from(record: Mapping[str, Any]) -> dict[str, Any]:
    """An ended job's usage from its slurmdb record, in the CLI transport's form
    (`sacct -o JobID,State,Elapsed,TotalCPU,UserCPU,SystemCPU,MaxRSS`): the job,
    then each step. A job's CPU times are its steps' sum, as sacct shows them."""
    job_id = str(record.get("job_id"))
    steps = record.get("steps") or []
    totals = {key: {"seconds": 0, "microseconds": 0} for key in ("total", "user", "system")}
    lines = []
    for step in steps:
        times = step.get("time") or {}
        for key, total in totals.items():
            part = times.get(key) or {}
            total["seconds"] += int(part.get("seconds") or 0)
            total["microseconds"] += int(part.get("microseconds") or 0)
        rss = next((t.get("count") for t in (step.get("tres") or {}).get("requested", {})
                    .get("max", []) if t.get("type") == "mem"), None)
        lines.append({
            "step": f"{job_id}.{(step.get('step') or {}).get('id', '')}",
            "state": str(step.get("state") or ""),
            "elapsed": _clock(int(times.get("elapsed") or 0)),
            "total_cpu": _cpu_time(times.get("total")), "user_cpu": _cpu_time(times.get("user")),
            "system_cpu": _cpu_time(times.get("system")),
            "max_rss": f"{int(rss) // 1024}K" if isinstance(rss, int) and rss else "0",
        })
    for total in totals.values():
        extra, total["microseconds"] = divmod(total["microseconds"], 1_000_000)
        total["seconds"] += extra
    state = record.get("state") or {}
    job_line = {
        "step": job_id, "state": str(state.get("current") if isinstance(state, dict) else state),
        "elapsed": _clock(int((record.get("time") or {}).get("elapsed") or 0)),
        "total_cpu": _cpu_time(totals["total"]), "user_cpu": _cpu_time(totals["user"]),
        "system_cpu": _cpu_time(totals["system"]), "max_rss": "",
    }
    return {"steps": [job_line, *lines]}


def time_limit_value(seconds: int | None) -> str:
    """A new time limit as sbatch writes it (whole minutes, rounded up)."""
    if seconds is None:
        return "UNLIMITED"
    return str(-(-seconds // 60))


# -- the transport ---------------------------------------------------------------


class RestTransport:
    """A Slurm cluster through slurmrestd (see the module's docstring)."""

    missing_verbs = frozenset({"suspend", "resume"})

    def __init__(
        self, url: str, tokens: TokenSource, *, user: str | None = None,
        timeout: float = 30.0, env: Mapping[str, str] | None = None,
        http: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.tokens = tokens
        self._user = user
        self.timeout = timeout
        self.base_env = dict(os.environ if env is None else env)
        self._http = http
        self.client = self._new_client()
        self._closed = False

    def check_spec(self, spec: JobSpec) -> None:
        """Refuse at submit what slurmrestd would refuse at launch.

        Raises:
            UnsupportedError: --signal with B: or R: (22.05 answers "Invalid
                SIGNAL specification" to any flag, where sbatch takes them).
        """
        if spec.signal is not None and ":" in spec.signal:
            raise UnsupportedError(
                "slurmrestd refuses --signal with B: or R: (Invalid SIGNAL specification): "
                "send it without, or submit to a cluster with the sbatch transport",
                details={"fields": ["signal"]})

    @classmethod
    def from_config(cls, config: ClusterConfig, env: Mapping[str, str] | None = None
                    ) -> RestTransport:
        assert config.rest_url is not None  # checked by the configuration
        return cls(config.rest_url, token_source(config), user=config.rest_user,
                   timeout=config.rest_timeout, env=env)

    @property
    def job_user(self) -> str:
        """The Slurm (and Unix) user jobs run as: rest_user, else the token's."""
        if self._user:
            return self._user
        user = jwt_claims(self.tokens.token()).get("sun")
        if not isinstance(user, str) or not user:
            raise BackendError("transport rest: set rest_user (the token does not name "
                               "its user)")
        return user

    def close(self) -> None:
        """Close the kept connections; a call after this one opens and closes
        its own (a gateway shutting down may still cancel a job)."""
        self._closed = True
        self.client.close()

    def _new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=self.timeout, transport=self._http)

    def _send(self, method: str, path: str, *, body: Any, params: Mapping[str, str] | None,
              headers: dict[str, str]) -> httpx.Response:
        if not self._closed:
            try:
                return self.client.request(method, path, json=body, params=params,
                                           headers=headers)
            except RuntimeError:  # closed meanwhile
                if not self._closed:
                    raise
        with self._new_client() as client:
            return client.request(method, path, json=body, params=params, headers=headers)

    # -- HTTP --------------------------------------------------------------------

    def _call(self, method: str, path: str, what: str, *, body: Any = None,
              params: Mapping[str, str] | None = None, retry: bool = True) -> dict[str, Any]:
        """One request, with the token fetched again and the request retried once
        when a refused token would explain the failure (`retry`: the request
        is safe to send twice)."""
        for attempt in (1, 2):
            token = self.tokens.token()
            user = self.job_user
            try:
                response = self._send(
                    method, path, body=body, params=params,
                    headers={"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token})
            except httpx.TimeoutException as exc:
                raise SlurmUnreachable(f"{what}: slurmrestd at {self.url} did not answer "
                                       f"within {self.timeout:g}s") from exc
            except httpx.TransportError as exc:
                raise SlurmUnreachable(f"{what}: cannot reach slurmrestd at {self.url}: "
                                       f"{exc}") from exc
            try:
                return checked(response, what, user)
            except _TokenSuspect as suspect:
                renewed = self.tokens.renew()
                if attempt == 2 or not retry or not renewed:
                    raise suspect.error from None
        raise AssertionError("unreachable")

    # -- the Transport protocol --------------------------------------------------

    def submit(self, script: str) -> str:
        """Submit a generated batch script (its #SBATCH options as the job's
        description); the job's id.

        Raises:
            SlurmRefused: Slurm rejected the job (the message says why).
            SlurmUnreachable: no answer; the job may or may not exist.
        """
        job = job_description(script, user_environment(self.base_env, self.job_user))
        # Never sent twice: a failure the token explains may also have been a
        # submission that went through (the backend looks before trying again).
        answer = self._call("POST", f"{API}/job/submit", "submit",
                            body={"script": script, "job": job}, retry=False)
        job_id = answer.get("job_id")
        if not isinstance(job_id, int) or job_id <= 0:
            raise SlurmRefused(f"submit: unexpected answer {json.dumps(answer)[:200]}")
        return str(job_id)

    def queue(self, comment_prefix: str = "") -> list[SlurmJob]:
        """The cluster's jobs whose comment starts with `comment_prefix` (the
        filter is ours: v0.0.38 has none)."""
        answer = self._call("GET", f"{API}/jobs", "jobs")
        return [job_from_squeue(raw) for raw in answer.get("jobs") or []
                if str(raw.get("comment") or "").startswith(comment_prefix)]

    def ended_since(self, seconds_ago: int, native_ids: Sequence[str] = ()) -> list[SlurmJob]:
        """Jobs that ended in the last `seconds_ago` seconds (given ones, if any),
        from slurmdbd. 22.05's JSON loses non-zero exit codes (the wrapper's exit
        file tells them; see parsing._sacct_exit)."""
        params = {"start_time": f"now-{max(1, seconds_ago)}", "end_time": "now",
                  "state": FINAL_STATE_CODES, "skip_steps": "true"}
        if native_ids:
            params["step"] = ",".join(native_ids)
        answer = self._call("GET", f"{DB}/jobs", "slurmdb jobs", params=params)
        return [job_from_sacct(raw) for raw in answer.get("jobs") or []]

    def cancel(self, native_id: str) -> None:
        """As scancel: Slurm's SIGTERM, then SIGKILL after KillWait (a job that
        has ended already is no error, as slurmrestd sees it)."""
        self._call("DELETE", f"{API}/job/{_job_id(native_id)}", "cancel")

    def signal(self, native_id: str, signal_name: str) -> None:
        """`signal_name` to a running job's batch script, which passes it on to
        the job's processes (see the module's docstring). A job that is not
        running conflicts, as with scancel --batch.

        Raises:
            ConflictError: the job is not running (pending, ended or gone).
        """
        state = self._state(native_id)
        if state not in ("RUNNING",):
            raise ConflictError(f"signal: Slurm job {native_id} is {state.lower()}: only "
                                "a running job's processes can be signalled")
        self._call("DELETE", f"{API}/job/{_job_id(native_id)}", "signal",
                   params={"signal": signal_name.upper().removeprefix("SIG")})

    def control(self, verb: str, native_id: str) -> None:
        """uhold and release; hold (admin) and the rest are not in v0.0.38.

        Raises:
            UnsupportedError: an admin hold (Slurm would record a user hold).
            VerbNotSupportedError: suspend, resume, requeue.
        """
        if verb in ("uhold", "release"):
            self._call("POST", f"{API}/job/{_job_id(native_id)}", verb,
                       body={"hold": verb == "uhold"})
            return
        if verb == "hold":
            raise UnsupportedError(
                "an admin hold of a job in Slurm's queue needs transport \"cli\": slurmrestd "
                f"acts as the Slurm user {self.job_user}, so Slurm would record a user hold")
        raise VerbNotSupportedError(
            f"{verb}: slurmrestd 22.05 (openapi v0.0.38) has no such operation; "
            "use transport \"cli\" for it", details={"verb": verb})

    def set_time_limit(self, native_id: str, seconds: int | None) -> None:
        self._call("POST", f"{API}/job/{_job_id(native_id)}", "time limit",
                   body={"time_limit": time_limit_value(seconds)})

    def batch_script(self, native_id: str) -> str:
        raise VerbNotSupportedError(
            "script: slurmrestd 22.05 (openapi v0.0.38) cannot show a job's batch script",
            details={"verb": "script"})

    def usage(self, native_id: str, running: bool) -> dict[str, Any]:
        """An ended job's usage, from slurmdbd (steps report theirs when they end).

        Raises:
            VerbNotSupportedError: the job still runs (v0.0.38 has no sstat).
            AccountingUnavailable: no slurmdbd behind slurmrestd.
        """
        if running:
            raise VerbNotSupportedError(
                "stats: a running job's usage (sstat) has no slurmrestd 22.05 endpoint; "
                "it is there once the job has ended", details={"verb": "stats"})
        answer = self._call("GET", f"{DB}/job/{_job_id(native_id)}", "slurmdb job")
        records = answer.get("jobs") or []
        return usage_from(records[-1]) if records else {"steps": []}

    def partitions(self) -> list[Partition]:
        return partitions_from(self._call("GET", f"{API}/partitions", "partitions"))

    def nodes(self) -> list[dict[str, Any]]:
        answer = self._call("GET", f"{API}/nodes", "nodes")
        return parse_sinfo(json.dumps({"nodes": answer.get("nodes") or []}))

    def _state(self, native_id: str) -> str:
        """The job's state as slurmctld has it.

        Raises:
            ConflictError: slurmctld no longer knows the job.
        """
        answer = self._call("GET", f"{API}/job/{_job_id(native_id)}", "job")
        jobs = answer.get("jobs") or []
        if not jobs:
            raise ConflictError(f"Slurm job {native_id} is gone")
        state = jobs[0].get("job_state")
        return state if isinstance(state, str) else ",".join(state or ["UNKNOWN"])


def _job_id(native_id: str) -> str:
    """A Slurm job id for a URL path (it came from Slurm: digits, maybe `_`)."""
    if not native_id.replace("_", "").isdigit():
        raise ConflictError(f"not a Slurm job id: {native_id!r}")
    return native_id


def give_to(user: str, paths: Sequence[Path]) -> None:
    """Hand directories and their files to the user REST jobs run as, when the
    gateway runs as root (run as that user, it owns them already; as anyone
    else, it cannot and the jobs would fail to write: see the README).

    Raises:
        BackendError: the user is unknown on this host.
    """
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise BackendError(f"the Slurm user {user} (transport rest) is not a user of this "
                           "host: the gateway cannot hand it the jobs' directories") from exc
    for path in paths:
        for item in (path, *path.iterdir()) if path.is_dir() else (path,):
            os.chown(item, entry.pw_uid, entry.pw_gid)

