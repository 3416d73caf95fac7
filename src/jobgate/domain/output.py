"""Output file patterns, as sbatch expands them."""

from __future__ import annotations

import os
import re

DEFAULT_STDOUT = "jobgate-%j.out"
DEFAULT_STDERR = "jobgate-%j.err"

_PATTERN = re.compile(r"%(%|j|x|u|A|a)")


def expand_output_pattern(
    pattern: str, *, job_id: int, name: str, user: str, working_directory: str,
    array_job_id: int | None = None, array_task_id: int | None = None,
) -> str:
    """`%j` job id, `%x` job name, `%u` user, `%A`/`%a` array ids, `%%` a percent sign;
    a relative result is taken from the working directory."""
    values = {
        "%": "%", "j": str(job_id), "x": name, "u": user,
        "A": str(array_job_id if array_job_id is not None else job_id),
        "a": str(array_task_id) if array_task_id is not None else "4294967294",
    }
    path = _PATTERN.sub(lambda m: values[m.group(1)], pattern)
    return os.path.normpath(os.path.join(working_directory, path))
