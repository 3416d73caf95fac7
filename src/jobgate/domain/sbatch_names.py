"""sbatch's long option names as JobSpec fields (``job_name`` -> ``name``, ...).

People who know Slurm write ``JobSpec(job_name="x", mem="4G", time="1:00:00")``;
this table maps those names (with ``-`` or ``_``) onto JobSpec's own.
"""

from __future__ import annotations

from typing import Any

from jobgate.errors import InvalidSpecError

__all__ = ["SBATCH_NAMES", "export_environment", "from_sbatch_names"]

SBATCH_NAMES: dict[str, str] = {
    "job_name": "name",
    "mem": "memory",
    "mem_per_cpu": "memory_per_cpu",
    "time": "time_limit",
    "output": "stdout",
    "error": "stderr",
    "chdir": "working_directory",
    "dependency": "dependencies",
    "clusters": "cluster",
    "export": "environment",
    "wrap": "command",
    "tag": "tags",
}


def _environment(value: Any) -> Any:
    return export_environment(value) if isinstance(value, str) else value


def export_environment(value: str) -> dict[str, str]:
    """sbatch's ``--export=ALL,A=1,B=2`` as a dict (ALL and NONE are dropped:
    the job's environment is always the gateway's plus these).

    Raises:
        InvalidSpecError: a name without a value.
    """
    pairs: dict[str, str] = {}
    for item in filter(None, value.split(",")):
        if item in ("ALL", "NONE"):
            continue
        key, eq, val = item.partition("=")
        if not eq:
            raise InvalidSpecError("export", item, "use NAME=value (names alone are not "
                                   "passed on; set their values)")
        pairs[key] = val
    return pairs


def from_sbatch_names(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with sbatch option names renamed to JobSpec fields.

    Raises:
        InvalidSpecError: an option and its field are both given.
    """
    if not any(key.replace("-", "_") in SBATCH_NAMES for key in data):
        return data
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        field = SBATCH_NAMES.get(name)
        if field is None:
            result[key] = value
            continue
        if field in data or field in result:
            raise InvalidSpecError(key, value, f"give {key} or {field}, not both")
        if field == "environment":
            value = _environment(value)
        elif field == "tags" and isinstance(value, str):
            value = [value]
        result[field] = value
    return result
