"""Every attribute of a Job reads what the API says, and every public name of
the SDK is used by some SDK or CLI test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from jobgate import Client, Job, JobState
from jobgate import __all__ as public_names
from jobgate import client as sdk

FIELDS = [name for name, value in vars(Job).items() if isinstance(value, sdk.job._Field)]


def test_every_field_reads_the_api(client: Client, tag: str) -> None:
    job = client.submit(command="echo out; echo err >&2", comment="a note", priority=3,
                        tags=[tag], name="fields")
    job.wait(timeout=30)
    answer = client._json("GET", f"/v1/jobs/{job.id}")  # the API's own view
    fresh = Job.from_api(client, answer)
    for name in FIELDS:
        key = getattr(Job, name).key
        value = getattr(fresh, name)
        if key in ("submit_time", "start_time", "end_time"):
            assert value is not None and value.isoformat()[:19] == answer[key][:19], name
        elif key == "state":
            assert value is JobState(answer[key])
        elif key in answer:
            assert value == answer[key], name
    assert (fresh.cluster, fresh.comment, fresh.priority, fresh.gpus) == ("local", "a note", 3, 0)
    assert fresh.source == "gateway" and fresh.tags == [tag]
    assert fresh.standard_error.endswith(".err") and fresh.read_stderr() == "err\n"
    assert fresh.cpu_time is not None and fresh.cpu_time >= 0
    assert fresh.max_rss is not None and fresh.max_rss > 0
    assert fresh.allocation is not None and fresh.allocation["cpus"]
    assert fresh.refresh() is fresh and fresh.state is JobState.COMPLETED


def test_every_public_name_is_used_by_a_test() -> None:
    tests = Path(__file__).parents[1]
    source = "\n".join(p.read_text() for folder in ("sdk", "cli")
                       for p in (tests / folder).glob("*.py"))
    untested = []
    for name in public_names:
        exported = getattr(__import__("jobgate"), name)
        if not inspect.isclass(exported) or issubclass(exported, BaseException) \
                or exported in (JobState,) or name == "JobSpec":
            continue  # errors, the state enum and the pydantic spec have their own tests
        untested += [f"{name}.{attr}" for attr in vars(exported)
                     if not attr.startswith("_")
                     and not re.search(rf"\.{attr}\b|\b{attr}=", source)]
    assert untested == []
