"""The JSON body of a submit, from the ways a caller may give the spec."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from jobgate.domain.parsing import parse_sbatch_directives
from jobgate.domain.sbatch_names import from_sbatch_names
from jobgate.domain.spec import JobSpec

__all__ = ["jsonable", "spec_body"]


def spec_body(script: str | None, command: str | None, spec: JobSpec | None,
              script_path: str | os.PathLike[str] | None,
              fields: dict[str, Any]) -> dict[str, Any]:
    """The submit body: `spec`'s set fields, then the script or command, then
    `fields` (JobSpec names or sbatch's), None values left out.

    Raises:
        InvalidSpecError: an sbatch name and its field both given, or a bad
            `#SBATCH` line in the script file.
        OSError: the script file cannot be read.
    """
    body: dict[str, Any] = {}
    if spec is not None:
        body.update(spec.model_dump(mode="json", exclude_unset=True))
    fields = from_sbatch_names(dict(fields))
    if script_path is not None:
        path = Path(script_path)
        script = path.read_text(encoding="utf-8")
        # sbatch names a job after its script unless told otherwise.
        if fields.get("name") is None and "name" not in parse_sbatch_directives(script) \
                and "name" not in body:
            fields["name"] = path.name
    given = {"script": script, "command": command, **fields}
    body.update({k: jsonable(v) for k, v in given.items() if v is not None})
    return body


def jsonable(value: Any) -> Any:
    """Python values a caller may reasonably pass, in the API's JSON form."""
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, JobSpec):
        return value.model_dump(mode="json", exclude_unset=True)
    return value
