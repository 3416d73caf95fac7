from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from jobgate.domain.output import expand_output_pattern
from jobgate.domain.spec import JobSpec, resolve_spec
from jobgate.errors import InvalidSpecError

SCRIPT = "#!/bin/bash\n#SBATCH -J sbname -t 0:01:00 --mem=100M -c 2\necho hi\n"


def test_directives_fill_the_spec() -> None:
    spec = resolve_spec(JobSpec.parse({"script": SCRIPT}))
    assert (spec.name, spec.time_limit, spec.memory, spec.cpus_per_task) == (
        "sbname", 60, 100, 2
    )


def test_an_explicit_field_wins_over_a_directive() -> None:
    spec = resolve_spec(JobSpec.parse({"script": SCRIPT, "name": "other", "time_limit": 5}))
    assert (spec.name, spec.time_limit, spec.memory) == ("other", 5, 100)


def test_explicit_unlimited_is_not_overwritten() -> None:
    spec = resolve_spec(JobSpec.parse({"script": SCRIPT, "time_limit": "UNLIMITED"}))
    assert spec.time_limit is None


def test_unknown_directive_is_refused_not_ignored() -> None:
    with pytest.raises(InvalidSpecError) as err:
        resolve_spec(JobSpec.parse({"script": "#!/bin/bash\n#SBATCH --hint=compute_bound\n"
                                              "true\n"}))
    assert err.value.field == "script"
    assert "--hint=compute_bound" in err.value.message


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"script": "x", "time_limit": "1:xx"}, "time_limit"),
        ({"script": "x", "memory": "4Q"}, "memory"),
        ({"script": "x", "cpus_per_task": 0}, "cpus_per_task"),
        ({"script": "x", "nodes": "many"}, "nodes"),
        ({"script": "x", "colour": "red"}, "colour"),
        ({"script": "x", "command": "true"}, "script"),
        ({}, "script"),
        ({"script": "x", "tags": [""]}, "tags"),
        ({"script": "x", "environment": {"A=B": "c"}}, "environment"),
    ],
)
def test_bad_values_name_their_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        JobSpec.parse(data)
    assert err.value.field == field
    assert field in err.value.message


def test_strings_become_numbers() -> None:
    spec = JobSpec.parse({"command": "true", "time_limit": "1-00:00:00", "memory": "4G"})
    assert spec.time_limit == 86400
    assert spec.memory == 4096


def test_naive_times_are_utc() -> None:
    spec = JobSpec.parse({"command": "true", "begin": "2030-01-01T10:00:00"})
    assert spec.begin == datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_tags_are_deduplicated_in_order() -> None:
    assert JobSpec.parse({"command": "true", "tags": ["b", "a", "b"]}).tags == ["b", "a"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("jobgate-%j.out", "/w/jobgate-7.out"),
        ("%x_%u.log", "/w/train_ana.log"),
        ("/abs/%j/%%.out", "/abs/7/%.out"),
        ("../up-%A_%a", "/up-7_4294967294"),
        ("job%4j-%2t.%s.out", "/w/job0007-00.batch.out"),
        ("%J_%n_%b_%10x", "/w/7_0_4_train"),
        ("%12j", "/w/0000000007"),  # Slurm pads to 10 digits at most
        ("%q%", "/w/%q%"),  # not a symbol: kept as it is
    ],
)
def test_output_patterns(pattern: str, expected: str) -> None:
    assert expand_output_pattern(
        pattern, job_id=7, name="train", user="ana", working_directory="/w"
    ) == expected


def test_an_array_tasks_output_patterns_pad_its_ids() -> None:
    assert expand_output_pattern(
        "%A_%3a.%b.out", job_id=57, name="t", user="ana", working_directory="/w",
        array_job_id=50, array_task_id=7) == "/w/50_007.7.out"


def test_mail_types_are_slurms_and_read_in_any_case() -> None:
    assert JobSpec.parse({"command": "true", "mail_type": "end, Fail"}).mail_type == "END,FAIL"
    with pytest.raises(InvalidSpecError, match="SOMETIMES is not one of"):
        JobSpec.parse({"command": "true", "mail_type": "END,sometimes"})


@pytest.mark.parametrize(("field", "value"), [
    ("qos", "two words"), ("mail_user", "a@b.org\n#SBATCH --uid=0"), ("open_mode", "rewind"),
])
def test_a_bad_slurm_option_names_its_field(field: str, value: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        JobSpec.parse({"command": "true", field: value})
    assert caught.value.field == field


@pytest.mark.parametrize("zero", [0, "0", "0:00", "00:00:00"])
def test_a_time_limit_of_zero_is_no_limit_as_with_sbatch(zero: object) -> None:
    assert JobSpec.parse({"command": "true", "time_limit": zero}).time_limit is None
    script = f"#!/bin/bash\n#SBATCH -t {zero}\ntrue\n"
    assert resolve_spec(JobSpec.parse({"script": script})).time_limit is None
