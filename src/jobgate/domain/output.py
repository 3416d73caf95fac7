"""Output file patterns, as sbatch expands them."""

from __future__ import annotations

import os
import re

DEFAULT_STDOUT = "jobgate-%j.out"
DEFAULT_STDERR = "jobgate-%j.err"

# An optional width zero-pads a number ("%4j" -> 0042), at most to 10 digits.
_PATTERN = re.compile(r"%(\d*)([%jJxuAabstn])")
_MAX_WIDTH = 10
NO_TASK = 4294967294  # what Slurm writes for %a outside an array (NO_VAL)


def expand_output_pattern(
    pattern: str, *, job_id: int, name: str, user: str, working_directory: str,
    array_job_id: int | None = None, array_task_id: int | None = None,
) -> str:
    """sbatch's replacement symbols, as slurmd expands them for a batch script:
    `%j` job id, `%J` the same (the batch step has no step number), `%x` job
    name, `%u` user, `%A`/`%a` array job and task id, `%b` the task id modulo
    10, `%s` the step ("batch"), `%t` and `%n` the task and node number (0),
    `%%` a percent sign. A width zero-pads a number (`%3a` -> 007) and is
    ignored for text. A relative result is taken from the working directory."""
    task = array_task_id if array_task_id is not None else NO_TASK
    values: dict[str, int | str] = {
        "%": "%", "j": job_id, "J": job_id, "x": name, "u": user, "s": "batch",
        "A": array_job_id if array_job_id is not None else job_id, "a": task,
        "b": task % 10, "t": 0, "n": 0,
    }

    def replace(match: re.Match[str]) -> str:
        value = values[match.group(2)]
        if isinstance(value, int) and match.group(1):
            return str(value).zfill(min(int(match.group(1)), _MAX_WIDTH))
        return str(value)

    path = _PATTERN.sub(replace, pattern)
    return os.path.normpath(os.path.join(working_directory, path))
