"""What Slurm's commands print, read into plain records: pure functions.

Covers `squeue --json` (and slurmrestd's v0.0.38 job objects, the same shape),
`sacct --json` and `sacct -P` text, `sinfo --json`, `scontrol show partition -o`
and `sstat -P`. Slurm's states and reasons go through one complete table to
jobgate's `JobState`; a state the table does not know becomes UNKNOWN and is
logged. Exit codes arrive as raw wait(2) statuses and are decoded here.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobgate.domain.parsing import parse_duration, parse_memory
from jobgate.domain.states import JobState
from jobgate.errors import BackendError, InvalidSpecError

log = logging.getLogger(__name__)

# Every state name Slurm 22.05-24.x prints (job_state_string and the flags that
# take its place), and what it means to jobgate. Flags name a phase of a base
# state: CONFIGURING and POWER_UP_NODE precede the start, REQUEUE* and
# SPECIAL_EXIT send the job back to the queue, STAGE_OUT follows the end. Flags
# that say nothing of the job's state (UPDATE_DB, RECONFIG_FAIL) are left out: in
# a 23.02+ list the base state beside them decides.
STATE_TABLE: Mapping[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "POWER_UP_NODE": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "SPECIAL_EXIT": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "SUSPENDED": JobState.SUSPENDED,
    "STOPPED": JobState.SUSPENDED,
    "COMPLETING": JobState.COMPLETING,
    "STAGE_OUT": JobState.COMPLETING,
    "COMPLETED": JobState.COMPLETED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    "LAUNCH_FAILED": JobState.FAILED,
    "TIMEOUT": JobState.TIMEOUT,
    "NODE_FAIL": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
    "BOOT_FAIL": JobState.BOOT_FAIL,
    "DEADLINE": JobState.DEADLINE,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
}
# squeue/sacct's short codes (text output), to the full names above.
SHORT_STATES: Mapping[str, str] = {
    "PD": "PENDING", "CF": "CONFIGURING", "POW": "POWER_UP_NODE", "RQ": "REQUEUED",
    "RF": "REQUEUE_FED", "RH": "REQUEUE_HOLD", "RD": "RESV_DEL_HOLD", "SE": "SPECIAL_EXIT",
    "R": "RUNNING", "RS": "RESIZING", "SI": "SIGNALING", "S": "SUSPENDED", "ST": "STOPPED",
    "CG": "COMPLETING", "SO": "STAGE_OUT", "CD": "COMPLETED", "CA": "CANCELLED",
    "RV": "REVOKED", "F": "FAILED", "TO": "TIMEOUT", "NF": "NODE_FAIL", "PR": "PREEMPTED",
    "BF": "BOOT_FAIL", "DL": "DEADLINE", "OOM": "OUT_OF_MEMORY",
}
# Flags that, listed beside a base state (23.02+ lists), decide the meaning.
_FLAG_PRIORITY = ("REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SPECIAL_EXIT", "RESV_DEL_HOLD",
                  "COMPLETING", "STAGE_OUT", "CONFIGURING", "POWER_UP_NODE", "STOPPED",
                  "RESIZING", "SIGNALING", "REVOKED", "LAUNCH_FAILED")
HELD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})
# Slurm's own pseudo-signals in the low bits of a status (slurm.h): not real signals.
SIG_OOM = 253 & 0x7F
_NOT_A_SIGNAL = frozenset({SIG_OOM, 0x7F})


def map_state(native: str | Iterable[str]) -> JobState:
    """jobgate's state for Slurm's: a name ("RUNNING", "CANCELLED by 0"), a short
    code ("CD") or a 23.02+ list of a base state and flags. Unknown: UNKNOWN, logged."""
    names = [native] if isinstance(native, str) else list(native)
    words = [SHORT_STATES.get(w, w) for w in
             (name.strip().split(" ")[0].upper() for name in names) if w]
    chosen = next((flag for flag in _FLAG_PRIORITY if flag in words), None)
    if chosen is None:
        chosen = next((w for w in words if w in STATE_TABLE), words[0] if words else "")
    state = STATE_TABLE.get(chosen)
    if state is None:
        log.warning("unmapped Slurm job state %r: shown as UNKNOWN", native)
        return JobState.UNKNOWN
    return state


def map_reason(reason: str | None) -> str | None:
    """Slurm's reason as jobgate keeps it: its own name, None for "None"."""
    if reason is None:
        return None
    text = reason.strip()
    return None if text in ("", "None", "(null)") else text


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int | None
    signal: int | None


def decode_wait_status(raw: int | None) -> ExitStatus:
    """A raw wait(2) status (squeue's exit_code, the wrapper's exit file): exit 3
    is 768, SIGTERM 15; Slurm's pseudo-signal 125 (out of memory) is neither."""
    if raw is None or raw < 0:
        return ExitStatus(None, None)
    signal = raw & 0x7F
    if signal == 0:
        return ExitStatus((raw >> 8) & 0xFF, None)
    if signal in _NOT_A_SIGNAL:
        return ExitStatus(None, None)
    return ExitStatus(None, signal)


def decode_exit_pair(text: str) -> ExitStatus:
    """sacct's and scontrol's "exit:signal" ("3:0", "0:15")."""
    code, _, signal = text.strip().partition(":")
    try:
        exit_code, sig = int(code), int(signal or 0)
    except ValueError:
        return ExitStatus(None, None)
    if sig:
        return ExitStatus(None, None if sig in _NOT_A_SIGNAL else sig)
    return ExitStatus(exit_code, None)


# -- the tag in --comment ------------------------------------------------------

TAG_PREFIX = "jobgate"
_TAG = re.compile(r"jobgate:([A-Za-z0-9_-]+):([0-9]+)\.([0-9]+)")


@dataclass(frozen=True, order=True)
class Tag:
    """Which gateway, job and run a Slurm job was submitted for."""

    gateway: str
    job_id: int
    run: int

    def __str__(self) -> str:
        return f"{TAG_PREFIX}:{self.gateway}:{self.job_id}.{self.run}"


def parse_tag(comment: str | None) -> Tag | None:
    """The tag at the start of a job's comment, if jobgate put one there."""
    if not comment:
        return None
    found = _TAG.match(comment.strip())
    if found is None:
        return None
    return Tag(found.group(1), int(found.group(2)), int(found.group(3)))


# -- jobs ------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmJob:
    """One Slurm job as squeue or sacct reports it, in jobgate's terms."""

    native_id: str
    state: JobState
    native_state: str
    reason: str | None
    tag: Tag | None
    name: str = ""
    user_name: str = ""
    partition: str = ""
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    exit_code_signal: int | None = None
    restart_count: int = 0
    # squeue's whole job object (empty from sacct): what importing outside jobs reads.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def held(self) -> bool:
        return self.state is JobState.PENDING and self.reason in HELD_REASONS


def epoch(value: Any) -> datetime | None:
    """Slurm's epoch seconds (0 or absent: unset) as an aware UTC datetime."""
    if isinstance(value, dict):  # 23.02+: {"set": true, "number": N}
        value = value.get("number") if value.get("set", True) else None
    if value in (None, "", "Unknown", "None") or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(number, UTC) if number > 0 else None


def _number(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("number") if value.get("set", True) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _times(state: JobState, submit: Any, start: Any, end: Any, status: ExitStatus
           ) -> tuple[datetime | None, datetime | None, datetime | None]:
    """Times that mean what they say: a pending job's start is only Slurm's
    estimate, a running job's end only its projected end; a job cancelled
    without starting has start == end and no exit status (one that ran for
    less than a second was signalled)."""
    submitted, started, ended = epoch(submit), epoch(start), epoch(end)
    if state in (JobState.PENDING, JobState.UNKNOWN):
        return submitted, None, None
    if not state.final:
        return submitted, started, None
    if started is not None and ended is not None and started >= ended \
            and state in (JobState.CANCELLED, JobState.DEADLINE) \
            and status.signal is None and not status.exit_code:
        started = None  # cancelled or past its deadline while pending: never ran
    return submitted, started, ended


def job_from_squeue(raw: Mapping[str, Any]) -> SlurmJob:
    """One job object of `squeue --json` / slurmrestd v0.0.38 `GET /job(s)`."""
    native_state = raw.get("job_state", "")
    state = map_state(native_state)
    status = decode_wait_status(_number(raw.get("exit_code"))) if state.final \
        else ExitStatus(None, None)
    submitted, started, ended = _times(state, raw.get("submit_time"), raw.get("start_time"),
                                       raw.get("end_time"), status)
    return SlurmJob(
        native_id=str(raw["job_id"]), state=state,
        native_state=native_state if isinstance(native_state, str) else ",".join(native_state),
        reason=map_reason(raw.get("state_reason")), tag=parse_tag(raw.get("comment")),
        name=str(raw.get("name") or ""), user_name=str(raw.get("user_name") or ""),
        partition=str(raw.get("partition") or ""), submit_time=submitted, start_time=started,
        end_time=ended, exit_code=status.exit_code, exit_code_signal=status.signal,
        restart_count=_number(raw.get("restart_cnt")) or 0, raw=raw,
    )


def load_json(text: str, what: str) -> dict[str, Any]:
    """A JSON document from a Slurm command, with its `errors` raised.

    Raises:
        BackendError: not JSON, or Slurm listed errors.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BackendError(f"{what}: output is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BackendError(f"{what}: unexpected output")
    errors = [e for e in data.get("errors") or [] if e]
    if errors:
        first = errors[0]
        message = first.get("description") or first.get("error") or str(first)
        raise BackendError(f"{what}: {message}", details={"errors": errors})
    return data


def parse_squeue(text: str, comment_prefix: str = "") -> list[SlurmJob]:
    """The jobs of `squeue --json` whose comment starts with `comment_prefix`
    (22.05 ignores -j/-t/-u with --json: the filtering is done here, before the
    costlier reading of each job).

    Raises:
        BackendError: the output is not what squeue prints.
    """
    return [job_from_squeue(raw) for raw in load_json(text, "squeue").get("jobs", [])
            if str(raw.get("comment") or "").startswith(comment_prefix)]


# The text form of squeue the poller reads when it needs only jobgate's own jobs
# (`squeue -h -t all -O`, SLURM_TIME_FORMAT=%s): what a tracked job's update
# needs and no more. 22.05 builds its JSON for 2,000 jobs in 0.5-1.8 s of CPU,
# this in 20-40 ms; same RPC to slurmctld (and a cheap REQUEST_PARTITION_INFO).
SQUEUE_TEXT_FIELDS = ("JobID", "State", "Reason", "exit_code", "RestartCnt", "SubmitTime",
                      "StartTime", "EndTime", "Comment")


def parse_squeue_text(text: str, separator: str, comment_prefix: str = "",
                      memo: dict[tuple[str, ...], SlurmJob] | None = None) -> list[SlurmJob]:
    """`squeue -h -O <SQUEUE_TEXT_FIELDS>` with `separator` after every field,
    keeping the jobs whose comment starts with `comment_prefix`. A comment may
    hold line breaks and anything printable, so records are cut at the
    separator (unguessable, made for each call: see commands.squeue_text), never
    at line ends alone: no comment can pass for a record.

    `memo` (the caller's, kept between calls) maps the fields of the records of
    the last call to their jobs: a job whose fields did not change since is
    not read again (most of a queue from one poll to the next). It is left
    holding this call's.

    Raises:
        BackendError: the output is not what squeue prints.
    """
    jobs = []
    records = text.split(separator + "\n")
    if records[-1].strip():
        raise BackendError(f"squeue: unexpected output {records[-1][:200]!r}")
    known = memo if memo is not None else {}
    seen: dict[tuple[str, ...], SlurmJob] = {}
    for record in records[:-1]:
        if not record.rpartition(separator)[2].startswith(comment_prefix):
            continue  # someone else's (the comment is the last field)
        fields = tuple(record.split(separator))
        job = known.get(fields)
        if job is None:
            job = _job_from_squeue_text(record, fields)
        seen[fields] = job
        jobs.append(job)
    if memo is not None:
        memo.clear()
        memo.update(seen)
    return jobs


def _job_from_squeue_text(record: str, fields: tuple[str, ...]) -> SlurmJob:
    if len(fields) != len(SQUEUE_TEXT_FIELDS):
        raise BackendError(f"squeue: unexpected record {record[:200]!r}")
    job_id, native_state, reason, exit_code, restarts, submit, start, end, comment = fields
    state = map_state(native_state)
    status = decode_wait_status(int(exit_code)) if state.final and exit_code.isdigit() \
        else ExitStatus(None, None)
    submitted, started, ended = _times(state, submit, start, end, status)
    return SlurmJob(
        native_id=job_id, state=state, native_state=native_state,
        reason=map_reason(reason), tag=parse_tag(comment), submit_time=submitted,
        start_time=started, end_time=ended, exit_code=status.exit_code,
        exit_code_signal=status.signal, restart_count=int(restarts) if restarts.isdigit() else 0,
    )


def _sacct_exit(raw: Mapping[str, Any], state: JobState) -> ExitStatus:
    """sacct --json's exit_code dict, with 22.05's bug: a job that exited non-zero
    is reported {"status": "SUCCESS", "return_code": 0}. Such a report of a
    FAILED job says nothing: the exit code is left unknown (read it from the
    text output or the wrapper's exit file)."""
    exit_code = raw.get("exit_code")
    if not isinstance(exit_code, dict):
        return decode_wait_status(_number(exit_code))
    status = exit_code.get("status")
    if status == "SIGNALED":
        signal = (exit_code.get("signal") or {}).get("signal_id")
        return ExitStatus(None, None if signal in _NOT_A_SIGNAL or signal is None else signal)
    code = _number(exit_code.get("return_code"))
    if not code and state is not JobState.COMPLETED:
        return ExitStatus(None, None)  # the 22.05 bug: unknown beats wrong
    return ExitStatus(code, None)


def job_from_sacct(raw: Mapping[str, Any]) -> SlurmJob:
    """One job object of `sacct --json` / slurmrestd's `/slurmdb/v0.0.38/jobs`."""
    state_info = raw.get("state") or {}
    native_state = state_info.get("current", "") if isinstance(state_info, dict) else ""
    state = map_state(native_state)
    times = raw.get("time") or {}
    status = _sacct_exit(raw, state) if state.final else ExitStatus(None, None)
    submitted, started, ended = _times(state, times.get("submission"), times.get("start"),
                                       times.get("end"), status)
    comment = raw.get("comment")
    if isinstance(comment, dict):
        comment = comment.get("job")
    return SlurmJob(
        native_id=str(raw["job_id"]), state=state,
        native_state=native_state if isinstance(native_state, str) else ",".join(native_state),
        reason=map_reason(state_info.get("reason") if isinstance(state_info, dict) else None),
        tag=parse_tag(comment), name=str(raw.get("name") or ""),
        user_name=str(raw.get("user") or ""), partition=str(raw.get("partition") or ""),
        submit_time=submitted, start_time=started, end_time=ended,
        exit_code=status.exit_code, exit_code_signal=status.signal,
    )


def latest_records(jobs: Iterable[SlurmJob]) -> dict[str, SlurmJob]:
    """One record per job id: sacct lists a requeued job once per run, oldest
    first; the last is the current one."""
    latest: dict[str, SlurmJob] = {}
    for job in jobs:
        latest[job.native_id] = job
    return latest


def parse_sacct_json(text: str) -> list[SlurmJob]:
    """Every job of `sacct --json`.

    Raises:
        BackendError: the output is not what sacct prints.
    """
    return [job_from_sacct(raw) for raw in load_json(text, "sacct").get("jobs", [])]


# The text form the poller asks for: right exit codes (unlike 22.05's --json), one
# line per job (-X), epoch times (SLURM_TIME_FORMAT=%s), the comment last since it
# may hold the delimiter.
SACCT_FIELDS = ("JobIDRaw", "State", "ExitCode", "Submit", "Start", "End", "Reason",
                "JobName", "User", "Partition", "Comment")


def parse_sacct_text(text: str) -> list[SlurmJob]:
    """`sacct -n -P -X -o <SACCT_FIELDS>` lines (SLURM_TIME_FORMAT=%s).

    Raises:
        BackendError: a line that does not have the fields asked for.
    """
    jobs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|", len(SACCT_FIELDS) - 1)
        if len(fields) != len(SACCT_FIELDS):
            raise BackendError(f"sacct: unexpected line {line[:200]!r}")
        raw = dict(zip(SACCT_FIELDS, fields, strict=True))
        state = map_state(raw["State"])
        status = decode_exit_pair(raw["ExitCode"]) if state.final else ExitStatus(None, None)
        submitted, started, ended = _times(state, raw["Submit"], raw["Start"], raw["End"],
                                           status)
        jobs.append(SlurmJob(
            native_id=raw["JobIDRaw"], state=state, native_state=raw["State"],
            reason=map_reason(raw["Reason"]), tag=parse_tag(raw["Comment"]),
            name=raw["JobName"], user_name=raw["User"], partition=raw["Partition"],
            submit_time=submitted, start_time=started, end_time=ended,
            exit_code=status.exit_code, exit_code_signal=status.signal,
        ))
    return jobs


# -- the cluster -----------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    up: bool
    max_time: int | None
    default_time: int | None
    total_cpus: int
    total_nodes: int
    max_cpus_per_job: int | None
    max_memory_per_job: int | None
    priority_tier: int


def _key_values(line: str) -> dict[str, str]:
    """scontrol's one-line `Key=Value Key=Value` form (values have no spaces,
    except a few trailing ones that nobody here reads)."""
    values: dict[str, str] = {}
    for token in line.split():
        key, eq, value = token.partition("=")
        if eq:
            values[key] = value
    return values


def _limit_int(value: str | None) -> int | None:
    if value is None or value.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A", ""):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _limit_duration(value: str | None) -> int | None:
    if value is None or value.upper() in ("NONE", "N/A", ""):
        return None
    try:
        return parse_duration(value)
    except InvalidSpecError:
        return None


def _limit_memory(value: str | None) -> int | None:
    number = _limit_int(value)
    if number is not None:
        return number
    if value is None or value.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A", ""):
        return None
    try:
        return parse_memory(value)
    except InvalidSpecError:
        return None


def parse_partitions(text: str) -> list[Partition]:
    """`scontrol show partition -o`: one partition a line, with its limits."""
    partitions = []
    for line in text.splitlines():
        values = _key_values(line)
        if "PartitionName" not in values:
            continue
        total_cpus = _limit_int(values.get("TotalCPUs")) or 0
        total_nodes = _limit_int(values.get("TotalNodes")) or 0
        per_node_cpus = _limit_int(values.get("MaxCPUsPerNode"))
        max_nodes = _limit_int(values.get("MaxNodes"))
        nodes = min(n for n in (max_nodes, total_nodes) if n is not None) \
            if total_nodes else max_nodes
        cpus = total_cpus or None
        if per_node_cpus is not None and nodes:
            cpus = min(cpus or per_node_cpus * nodes, per_node_cpus * nodes)
        per_node_memory = _limit_memory(values.get("MaxMemPerNode"))
        partitions.append(Partition(
            name=values["PartitionName"], default=values.get("Default") == "YES",
            up=values.get("State", "UP") == "UP",
            max_time=_limit_duration(values.get("MaxTime")),
            default_time=_limit_duration(values.get("DefaultTime")),
            total_cpus=total_cpus, total_nodes=total_nodes, max_cpus_per_job=cpus,
            max_memory_per_job=per_node_memory * nodes if per_node_memory and nodes else None,
            priority_tier=_limit_int(values.get("PriorityTier")) or 0,
        ))
    return partitions


def parse_sinfo(text: str) -> list[dict[str, Any]]:
    """The nodes of `sinfo --json` (22.05 lists no partitions there), in the form
    the clusters endpoint shows: name, state, CPUs, memory (MiB), partitions.

    Raises:
        BackendError: the output is not what sinfo prints.
    """
    nodes = []
    for raw in load_json(text, "sinfo").get("nodes", []):
        state = raw.get("state")
        nodes.append({
            "name": raw.get("name"),
            "state": state if isinstance(state, str) else ",".join(state or []),
            "cpus": _number(raw.get("cpus")),
            "alloc_cpus": _number(raw.get("alloc_cpus")),
            "memory": _number(raw.get("real_memory")),
            "alloc_memory": _number(raw.get("alloc_memory")),
            "gpus": _gpu_count(str(raw.get("gres") or "")),
            "partitions": list(raw.get("partitions") or []),
        })
    return nodes


def _gpu_count(gres: str) -> int:
    """GPUs in a gres string such as "gpu:a100:4(S:0-1),shard:8"."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            total += int(parts[-1])
    return total


# sstat's fields for a running job's batch step, and their units.
SSTAT_FIELDS = ("JobID", "AveCPU", "MaxRSS", "MaxVMSize", "NTasks")


def parse_sstat(text: str) -> dict[str, Any]:
    """`sstat -n -P -o <SSTAT_FIELDS>`: the first step's usage, sizes in KiB."""
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < len(SSTAT_FIELDS):
            continue
        raw = dict(zip(SSTAT_FIELDS, fields, strict=False))
        return {
            "step": raw["JobID"],
            "ave_cpu_seconds": _slurm_seconds(raw["AveCPU"]),
            "max_rss_kib": _kib(raw["MaxRSS"]),
            "max_vmsize_kib": _kib(raw["MaxVMSize"]),
            "ntasks": _limit_int(raw["NTasks"]),
        }
    return {}


def _slurm_seconds(text: str) -> float | None:
    """Slurm's [D-]HH:MM:SS[.mmm] or MM:SS.mmm CPU times."""
    text = text.strip()
    if not text:
        return None
    days, _, clock = text.rpartition("-")
    parts = clock.split(":")
    try:
        seconds = sum(float(p) * 60.0 ** i for i, p in enumerate(reversed(parts)))
        return float(seconds + int(days or 0) * 86400)
    except ValueError:
        return None


_SIZE_UNITS = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}


def _kib(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    unit = text[-1].upper()
    try:
        if unit in _SIZE_UNITS:
            return int(float(text[:-1]) * _SIZE_UNITS[unit])
        return int(text) // 1024  # bytes
    except ValueError:
        return None
