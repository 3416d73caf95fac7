"""Registry records: jobs that schedulers outside jobgate run, pushed into the ledger.

A record names its job by ``(cluster_id, job_id)`` or ``(cluster_id, group_id,
group_index)`` and maps onto the ledger's columns where the concept exists
(pyslurm's names); what has no column is kept in ``registry_data``. Pure: the
standard library and pydantic only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jobgate.domain.parsing import parse_duration, parse_memory
from jobgate.domain.spec import invalid_spec_from
from jobgate.domain.states import JobState
from jobgate.errors import InvalidSpecError

# Where a job comes from (the ledger's `source`).
GATEWAY = "gateway"
REGISTRY = "registry"

INT32 = 2**31 - 1
INT64 = 2**63 - 1
MAX_ADDITIONAL_BYTES = 64 * 1024
MAX_NODES = 1_000_000

# Slurm's job states (long and short names, base and extended) -> the ledger's.
_SLURM_STATES: dict[str, JobState] = {
    **{state.value: state for state in JobState},
    "PD": JobState.PENDING, "R": JobState.RUNNING, "S": JobState.SUSPENDED,
    "CG": JobState.COMPLETING, "CD": JobState.COMPLETED, "CA": JobState.CANCELLED,
    "F": JobState.FAILED, "TO": JobState.TIMEOUT, "NF": JobState.NODE_FAIL,
    "PR": JobState.PREEMPTED, "BF": JobState.BOOT_FAIL, "DL": JobState.DEADLINE,
    "OOM": JobState.OUT_OF_MEMORY,
    "CONFIGURING": JobState.RUNNING, "CF": JobState.RUNNING,
    "RESIZING": JobState.RUNNING, "RS": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING, "SI": JobState.RUNNING,
    "STOPPED": JobState.SUSPENDED, "ST": JobState.SUSPENDED,
    "STAGE_OUT": JobState.COMPLETING, "SO": JobState.COMPLETING,
    "REQUEUED": JobState.PENDING, "RQ": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING, "RF": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING, "RH": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING, "RD": JobState.PENDING,
    "REVOKED": JobState.CANCELLED, "RV": JobState.CANCELLED,
    "SPECIAL_EXIT": JobState.FAILED, "SE": JobState.FAILED,
    "LAUNCH_FAILED": JobState.FAILED,
}
_HOLD_STATES = frozenset({"REQUEUE_HOLD", "RH", "RESV_DEL_HOLD", "RD"})
_HOLD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})
_NO_TIME_LIMIT = frozenset({"PARTITION_LIMIT", "NONE", ""})

Text64 = Annotated[str, Field(min_length=1, max_length=64)]
Text128 = Annotated[str, Field(max_length=128)]
Text256 = Annotated[str, Field(max_length=256)]


class RegistryRecord(BaseModel):
    """One job as an outside scheduler knows it."""

    model_config = ConfigDict(extra="forbid")

    job_id: int | Text128 | None = Field(
        None, description="The scheduler's job id (the ledger's native_id)")
    group_id: int | None = Field(None, ge=0, le=INT64,
                                 description="Slurm's ArrayJobId (array_job_id)")
    group_index: int | None = Field(None, ge=0, le=INT32,
                                    description="Slurm's ArrayTaskId (array_task_id)")
    job_name: Text256 | None = None
    project_oid: Text256 | int | None = None
    compute_project_id: Text128 | None = Field(None, description="The account")
    cluster_id: Text64 = Field(description="The cluster the job runs on")
    partition: Annotated[str, Field(max_length=64)] | None = None
    nodes: list[Text256] | int | Annotated[str, Field(max_length=65536)] | None = Field(
        None, description="Node names, a Slurm host list (nid[001-004]) or a count")
    allocated_resources: list[Text256] | dict[str, Any] | Annotated[
        str, Field(max_length=4096)] | None = Field(
        None, description="TRES: ['cpu=64', 'mem=256G', 'node=2', 'gres/gpu=4'], "
                          "the same as one string, or an object")
    working_directory: Annotated[str, Field(max_length=4096)] | None = None
    submitted: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    time_limit: int | str | None = Field(
        None, description="Seconds, or a Slurm time string ('1-00:00:00'; a bare number "
                          "in a string is minutes, as in Slurm); null or UNLIMITED: none")
    user: Annotated[str, Field(min_length=1, max_length=128)]
    state: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="A Slurm state, long or short (COMPLETED, CD, REQUEUED...); "
                          "null: UNKNOWN")
    priority_id: Text256 | int | None = None
    reservation: Text256 | None = None
    reason: Text256 | None = Field(None, description="The state reason")
    exit_code: int | Annotated[str, Field(max_length=16)] | None = Field(
        None, description="The exit code (0-255), or Slurm's 'code:signal' ('3:0'; "
                          "'0:9': killed by signal 9)")
    cluster_cockpit_id: int | Text256 | None = None
    additional_data: dict[str, Any] | None = None

    @field_validator("submitted", "start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # the API's one time zone
        return value

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 0 <= value <= INT64:
            raise ValueError("must be between 0 and 2**63-1")
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be blank")
        return value


def native_state(text: str | None) -> tuple[JobState, bool]:
    """The ledger state of a scheduler's state string, and whether it means a hold.

    Raises:
        InvalidSpecError: not a state Slurm reports.
    """
    if text is None:
        return JobState.UNKNOWN, False
    # sacct writes "CANCELLED by 1234" and truncates with "+".
    word = text.strip().split(" ", 1)[0].rstrip("+").upper()
    state = _SLURM_STATES.get(word)
    if state is None:
        raise InvalidSpecError("state", text, "not a Slurm job state; use one of "
                               + ", ".join(s.value for s in JobState))
    return state, word in _HOLD_STATES


def count_hosts(hostlist: str) -> int:
    """Nodes in a Slurm host list: ``nid[001-004,007],login1`` is 6.

    Raises:
        InvalidSpecError: not a host list.
    """
    total = 0
    for name in _split_top(hostlist):
        if not _HOST.fullmatch(name):
            raise InvalidSpecError("nodes", hostlist, "not a host list (e.g. nid[001-004])")
        count = 1
        for group in _RANGES.findall(name):
            count *= _count_ranges(group, hostlist)
        total += count
    return total


_HOST = re.compile(r"(?:[^\[\],\s]+|\[[0-9,-]+\])+")
_RANGES = re.compile(r"\[([0-9,-]+)\]")


def _split_top(text: str) -> list[str]:
    """Split on the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def _count_ranges(group: str, hostlist: str) -> int:
    count = 0
    for item in group.split(","):
        low, sep, high = item.partition("-")
        if not low.isdigit() or (sep and (not high.isdigit() or int(high) < int(low))):
            raise InvalidSpecError("nodes", hostlist, "not a host list (e.g. nid[001-004])")
        count += int(high) - int(low) + 1 if sep else 1
    return count


_TRES_KEYS = {"cpu": "cpus", "cpus": "cpus", "ncpus": "cpus", "mem": "memory",
              "memory": "memory", "node": "nodes", "nodes": "nodes", "gpu": "gpus",
              "gpus": "gpus"}


def tres(resources: list[str] | dict[str, Any] | str | None) -> dict[str, int]:
    """cpus, memory (MiB), gpus and nodes out of a TRES list, string or object.

    Entries that are not `key=value` or name something else are left out (they
    stay in registry_data); GPUs of several types (gres/gpu:a100=2) add up.

    Raises:
        InvalidSpecError: a known key with a value that is not a count or a size.
    """
    if resources is None:
        return {}
    if isinstance(resources, dict):
        parsed = [_tres_item(str(key), value) for key, value in resources.items()]
    else:
        entries = resources.split(",") if isinstance(resources, str) else resources
        parsed = [_tres_entry(entry) for entry in entries]
    found: dict[str, int] = {}
    for item in parsed:
        if item is not None:
            kind, amount = item
            found[kind] = found.get(kind, 0) + amount if kind == "gpus" else amount
    return found


@lru_cache(maxsize=4096)
def _tres_entry(entry: str) -> tuple[str, int] | None:
    """One `key=value` entry of a TRES list or string. Remembered: the records
    of a batch repeat a few entries ("cpu=64", "mem=256G") thousands of times."""
    key, sep, value = entry.partition("=")
    return _tres_item(key, value) if sep else None


def _tres_item(key: str, value: Any) -> tuple[str, int] | None:
    """(cpus|memory|gpus|nodes, amount) of one TRES entry; None: not one of those."""
    name = key.strip().lower()
    kind = _TRES_KEYS.get(name) or ("gpus" if name.startswith("gres/gpu") else None)
    if kind is None:
        return None
    field = f"allocated_resources.{key.strip()}"
    return kind, _size(field, value) if kind == "memory" else _count(field, value)


def _count(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (
            isinstance(value, str) and not value.strip().isdigit()):
        raise InvalidSpecError(field, value, "not a whole number")
    number = int(value)
    if not 0 <= number <= INT32:
        raise InvalidSpecError(field, value, f"must be between 0 and {INT32}")
    return number


_WHOLE_SIZE = re.compile(r"([0-9]+)([MGT]?)(?:I?B)?", re.IGNORECASE)
_MIB = {"": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


def _size(field: str, value: Any) -> int:
    whole = _WHOLE_SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if whole is not None:  # the usual TRES form ("256G"), without fractions
        mib = int(whole.group(1)) * _MIB[whole.group(2).upper()]
    else:
        mib = parse_memory(value.strip() if isinstance(value, str) else value, field)
    if mib > INT32:
        raise InvalidSpecError(field, value, f"larger than {INT32} MiB")
    return mib


_EXIT_PAIR = re.compile(r"\s*([0-9]{1,3})(?::([0-9]{1,3}))?\s*")


def exit_status(value: int | str | None) -> tuple[int | None, int | None]:
    """(exit_code, exit_code_signal) of a record's exit code, as the ledger keeps
    them: a job killed by a signal has a signal and no exit code.

    Raises:
        InvalidSpecError: not a code from 0 to 255, or not 'code:signal'.
    """
    if value is None:
        return None, None
    found = _EXIT_PAIR.fullmatch(str(value)) if not isinstance(value, bool) else None
    code, signal = (int(found.group(1)), int(found.group(2) or 0)) if found else (-1, 0)
    if not 0 <= code <= 255 or not 0 <= signal <= 255:
        raise InvalidSpecError("exit_code", value,
                               "an exit code from 0 to 255, or 'code:signal' such as '3:0'")
    return (None, signal) if signal else (code, None)


def _time_limit(value: int | str | None) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().upper() in _NO_TIME_LIMIT):
        return None
    seconds = parse_duration(value, "time_limit")
    if seconds is not None and seconds > INT32:
        raise InvalidSpecError("time_limit", value, f"more than {INT32} seconds")
    return seconds


def parse_record(data: Any) -> RegistryRecord:
    """Raises:
    InvalidSpecError: naming the first bad field.
    """
    if not isinstance(data, dict):
        raise InvalidSpecError("record", type(data).__name__, "a record must be a JSON object")
    size = check_text(data)
    try:
        record = RegistryRecord.model_validate(data)
    except ValidationError as exc:
        raise invalid_spec_from(exc) from exc
    if record.additional_data is not None and size > MAX_ADDITIONAL_BYTES and len(
            orjson.dumps(record.additional_data, default=str)) > MAX_ADDITIONAL_BYTES:
        raise InvalidSpecError("additional_data", "...",
                               f"larger than {MAX_ADDITIONAL_BYTES} bytes as JSON")
    return record


def check_text(data: dict[str, Any]) -> int:
    """Refuse what neither store can hold: NUL characters, lone surrogates,
    integers past 64 bits. Returns the size of the record as JSON.

    Raises:
        InvalidSpecError: naming the record's field.
    """
    size, _ = _storable(data)
    if size is not None:
        return size
    for key, value in data.items():
        size, reason = _storable({key: value})
        if size is None:
            raise InvalidSpecError(str(key)[:64], "...", reason or "not storable")
    raise AssertionError("unreachable: some field failed")  # pragma: no cover


def _storable(value: Any) -> tuple[int | None, str | None]:
    """The JSON size of `value`, or None and why a store could not hold it."""
    try:
        text = orjson.dumps(value, default=str)
    except orjson.JSONEncodeError as exc:
        if "64-bit" in str(exc):
            return None, "integers must fit in 64 bits"
        if "recursion" in str(exc).lower():
            return None, "nested too deep"
        return None, "text must be valid Unicode (no lone surrogates)"
    if b"\\u0000" in text:
        return None, "text must not contain NUL characters"
    return len(text), None


def ledger_columns(record: RegistryRecord) -> dict[str, Any]:
    """The ledger's columns for a record (those the registry decides).

    Raises:
        InvalidSpecError: a value that cannot be mapped: no key, a half group
            key, a state, time limit, node list or resource that is not one.
    """
    if (record.group_id is None) != (record.group_index is None):
        raise InvalidSpecError("group_index" if record.group_index is None else "group_id",
                               None, "give group_id and group_index together")
    if record.job_id is None and (record.group_id is None or record.group_index is None):
        raise InvalidSpecError("job_id", None,
                               "name the job: give job_id, or group_id and group_index")
    state, hold_state = native_state(record.state)
    exit_code, exit_signal = exit_status(record.exit_code)
    found = tres(record.allocated_resources)
    nodes = record.nodes
    if isinstance(nodes, bool):
        raise InvalidSpecError("nodes", nodes, "a list of names, a host list or a count")
    if isinstance(nodes, int):
        num_nodes = nodes
    elif isinstance(nodes, str):
        num_nodes = count_hosts(nodes) if nodes.strip() else 0
    elif isinstance(nodes, list):
        num_nodes = len(nodes)
    else:
        num_nodes = 0
    if not 0 <= num_nodes <= MAX_NODES:
        raise InvalidSpecError("nodes", num_nodes, f"must be 0 to {MAX_NODES} nodes")
    extra = {key: value for key, value in (
        ("project_oid", record.project_oid), ("priority_id", record.priority_id),
        ("reservation", record.reservation), ("cluster_cockpit_id", record.cluster_cockpit_id),
        ("nodes", nodes if not isinstance(nodes, int) else None),
        ("allocated_resources", record.allocated_resources),
        ("additional_data", record.additional_data),
    ) if value is not None}
    return {
        "native_id": None if record.job_id is None else str(record.job_id),
        "array_job_id": record.group_id, "array_task_id": record.group_index,
        "name": record.job_name or "", "cluster": record.cluster_id,
        "partition": record.partition or "", "account": record.compute_project_id,
        "user_name": record.user, "state": state.value, "state_reason": record.reason,
        "held": state is JobState.PENDING and (hold_state or record.reason in _HOLD_REASONS),
        "num_nodes": max(num_nodes or found.get("nodes", 1), 1),
        "ntasks": 1, "cpus_per_task": max(found.get("cpus", 1), 1),
        "memory": found.get("memory"), "gpus": found.get("gpus", 0),
        "time_limit": _time_limit(record.time_limit),
        "working_directory": record.working_directory or "",
        # None: the ledger keeps what it has, or takes the time of arrival.
        "submit_time": record.submitted or record.start or record.end,
        "start_time": record.start, "end_time": record.end,
        "exit_code": exit_code, "exit_code_signal": exit_signal,
        "registry_data": extra,
    }
