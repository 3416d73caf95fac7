"""A page of `GET /v1/jobs` as JSON, made from the store's plain values (and
the answer of `POST /v1/jobs:batch`, from the records just made).

The same bytes as `JobList(jobs=[JobOut.of(record) ...]).model_dump_json()`
(tests/api/test_job_pages.py holds them side by side), without building a
JobRecord, its JobSpec and a JobOut per job: for a page of 100 jobs that cost
several times the query (bench/list_jobs.py).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import pydantic_core

from jobgate.api.schemas import JobOut
from jobgate.domain.job import JobRecord
from jobgate.domain.states import JobState

# JobOut's fields in its order: the JSON keys, in the order pydantic writes them.
_FIELDS = tuple(JobOut.model_fields)
_IN_ORDER = operator.itemgetter(*_FIELDS)
_FINAL = {state.value: state.final for state in JobState}


def job_out(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What `JobOut.of` makes of a job, from the values of its row
    (store/jobs.py JobRepository.list_page), to which it adds JobOut's derived fields."""
    start = row["start_time"]
    run_time = 0 if start is None else \
        max(0, int(((row["end_time"] or now) - start).total_seconds()))
    cpus = row["ntasks"] * row["cpus_per_task"]
    cpu_time = max_rss = None
    stats = row["stats"]
    if stats:
        # As JobOut's types have them: a float, and an int (1024.0 is 1024 there).
        if "cpu_user" in stats and "cpu_system" in stats:
            cpu_time = float(stats["cpu_user"] + stats["cpu_system"])
        max_rss = stats.get("max_rss_kib")
        if isinstance(max_rss, float) and max_rss.is_integer():
            max_rss = int(max_rss)
    row["final"] = _FINAL[row["state"]]
    row["cpus"] = cpus
    row["run_time"] = run_time
    row["cpu_time"] = cpu_time
    row["max_rss"] = max_rss
    row["elapsed_cpu_time"] = run_time * cpus
    return dict(zip(_FIELDS, _IN_ORDER(row), strict=True))


def job_list_json(rows: Sequence[dict[str, Any]], next_cursor: str | None,
                  now: datetime) -> bytes:
    return _dumps({"jobs": [job_out(row, now) for row in rows], "next_cursor": next_cursor})


def batch_json(records: Sequence[JobRecord], now: datetime) -> bytes:
    """BatchOut of just-submitted jobs (`POST /v1/jobs:batch`): the same bytes as
    `BatchOut(jobs=[JobOut.of(record) ...]).model_dump_json()`."""
    return _dumps({"jobs": [job_out(_row_of(record), now) for record in records]})


def _row_of(record: JobRecord) -> dict[str, Any]:
    row = record.__dict__.copy()  # its fields (pydantic keeps them there), shallow
    row["state"] = record.state.value
    row["dependencies"] = record.spec.dependencies
    row["qos"] = record.spec.qos
    return row


def _dumps(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body, option=orjson.OPT_UTC_Z)
    except TypeError:  # what orjson cannot write (an integer past 64 bits in registry data)
        return pydantic_core.to_json(body)
