"""Tests for jobgate.domain.parsing: durations, memory sizes and #SBATCH directives."""

from __future__ import annotations

from typing import Any

import pytest

from jobgate.domain.parsing import (
    format_duration,
    parse_duration,
    parse_memory,
    parse_sbatch_directives,
    parse_warn_signal,
)
from jobgate.errors import InvalidSpecError

# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (90, 90),  # ints are seconds
        (3600.0, 3600),
        ("5", 300),  # M
        ("0", 0),
        ("90", 5400),  # M overflows freely
        ("1:30", 90),  # M:S
        ("90:00", 5400),  # M:S, first component may overflow
        ("0:01:00", 60),  # H:M:S
        ("1:02:03", 3723),
        ("48:00:00", 172800),  # H:M:S, hours may overflow without days
        ("2-3", 2 * 86400 + 3 * 3600),  # D-H
        ("2-3:04", 2 * 86400 + 3 * 3600 + 4 * 60),  # D-H:M
        ("2-03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),  # D-H:M:S
        ("0-0:0:1", 1),
        ("1.02:03:04", 86400 + 2 * 3600 + 3 * 60 + 4),  # D.HH:MM:SS
        ("10.00:00:00", 864000),
        ("  1:00  ", 60),  # surrounding whitespace ignored
        ("UNLIMITED", None),
        ("unlimited", None),
        ("Infinite", None),
    ],
)
def test_parse_duration(value: str | int | float, expected: int | None) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "-5",
        "abc",
        "1:xx",
        "1:2:3:4",
        "1:60",  # seconds must be < 60
        "1:60:00",  # minutes must be < 60
        "1-24",  # hours must be < 24 when days are given
        "1-1:60",
        "1-1:1:60",
        "1.24:00:00",
        "1.1:00",  # the dot form needs H:M:S
        "1-",
        "-1-0",
        ":30",
        "1::2",
        "1.5",
        "1:30.5",
        "٣",  # non-ASCII digit
        "+5",
        -1,
        True,
        1.5,
        -60.0,
    ],
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_duration(value)
    assert info.value.field == "time_limit"
    assert info.value.value == value
    assert "time_limit" in str(info.value)


def test_parse_duration_names_custom_field() -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_duration("soon", field="deadline")
    assert info.value.field == "deadline"
    assert info.value.value == "soon"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "UNLIMITED"),
        (0, "00:00:00"),
        (59, "00:00:59"),
        (60, "00:01:00"),
        (3723, "01:02:03"),
        (86399, "23:59:59"),
        (86400, "1-00:00:00"),
        (2 * 86400 + 3 * 3600 + 4 * 60 + 5, "2-03:04:05"),
        (100 * 86400, "100-00:00:00"),
    ],
)
def test_format_duration(seconds: int | None, expected: str) -> None:
    assert format_duration(seconds) == expected
    assert parse_duration(expected) == seconds  # round trip


@pytest.mark.parametrize("seconds", [0, 1, 61, 3599, 3600, 86401, 987654])
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(InvalidSpecError) as info:
        format_duration(-1)
    assert info.value.value == -1


# ------------------------------------------------------------------------------ memory


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (512, 512),
        (0, 0),
        ("512", 512),  # no unit means MiB
        ("0", 0),
        ("512K", 1),  # rounds up to whole MiB
        ("1024K", 1),
        ("1025K", 2),
        ("0K", 0),
        ("512M", 512),
        ("4G", 4096),
        ("1T", 1024 * 1024),
        ("1.5G", 1536),
        ("1.1G", 1127),  # 1126.4 rounds up
        ("0.5T", 512 * 1024),
        ("4g", 4096),
        ("512m", 512),
        ("4GB", 4096),
        ("4GiB", 4096),
        ("4gib", 4096),
        ("100MB", 100),
        (" 2G ", 2048),
    ],
)
def test_parse_memory(value: str | int, expected: int) -> None:
    assert parse_memory(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "-1",
        "4X",
        "G",
        "4GG",
        "1.5M",
        "1.5",
        "0.5K",
        "4B",
        "4iB",
        "1,5G",
        "1e3",
        "٤G",
        -1,
        True,
        1.5,
    ],
)
def test_parse_memory_rejects(value: Any) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_memory(value)
    assert info.value.field == "memory"
    assert info.value.value == value


def test_parse_memory_names_custom_field() -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_memory("lots", field="memory_per_cpu")
    assert info.value.field == "memory_per_cpu"


# -------------------------------------------------------------------------------- sbatch


def _script(*directives: str) -> str:
    return "#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives) + "srun hostname\n"


def test_issue_example() -> None:
    script = _script("-J sbname -t 0:01:00 --mem=100M -c 2")
    assert parse_sbatch_directives(script) == {
        "name": "sbname",
        "time_limit": 60,
        "memory": 100,
        "cpus_per_task": 2,
    }


@pytest.mark.parametrize(
    ("directive", "expected"),
    [
        ("--job-name=train", {"name": "train"}),
        ("--job-name train", {"name": "train"}),
        ("-J train", {"name": "train"}),
        ("-Jtrain", {"name": "train"}),
        ("-p gpu", {"partition": "gpu"}),
        ("--partition=gpu", {"partition": "gpu"}),
        ("-A proj1", {"account": "proj1"}),
        ("--account proj1", {"account": "proj1"}),
        ("-M c1,c2", {"cluster": "c1,c2"}),
        ("--clusters=c1", {"cluster": "c1"}),
        ("-N 2", {"nodes": 2}),
        ("--nodes=2-4", {"nodes": 2}),
        ("-N3-3", {"nodes": 3}),
        ("-n 8", {"ntasks": 8}),
        ("--ntasks=8", {"ntasks": 8}),
        ("-c2", {"cpus_per_task": 2}),
        ("--cpus-per-task 4", {"cpus_per_task": 4}),
        ("--mem=4G", {"memory": 4096}),
        ("--mem 512", {"memory": 512}),
        ("--mem-per-cpu=2G", {"memory_per_cpu": 2048}),
        ("-G 2", {"gpus": 2}),
        ("--gpus=a100:4", {"gpus": 4}),
        ("--gres=gpu:2", {"gpus": 2}),
        ("--gres=gpu:a100:3", {"gpus": 3}),
        ("--gres=gpu", {"gpus": 1}),
        ("--gres=gpu:a100", {"gpus": 1}),
        ("--gres=gpu:2,mps:100", {"gpus": 2, "_unknown": ["--gres=mps:100"]}),
        ("-t 30", {"time_limit": 1800}),
        ("--time=1-00:00:00", {"time_limit": 86400}),
        ("--time=UNLIMITED", {"time_limit": None}),
        ("-t1:00:00", {"time_limit": 3600}),
        ("-b now+1hour", {"begin": "now+1hour"}),
        ("--begin=2030-01-01T10:00:00", {"begin": "2030-01-01T10:00:00"}),
        ("--deadline=2030-01-02", {"deadline": "2030-01-02"}),
        ("--priority=10", {"priority": 10}),
        ("-H", {"hold": True}),
        ("--hold", {"hold": True}),
        ("-a 0-9%2", {"array": "0-9%2"}),
        ("--array=1,3,5", {"array": "1,3,5"}),
        ("-d afterok:12:13", {"dependencies": "afterok:12:13"}),
        ("--dependency=singleton", {"dependencies": "singleton"}),
        ("-o out-%j.log", {"stdout": "out-%j.log"}),
        ("--error=err.log", {"stderr": "err.log"}),
        ("-e err.log", {"stderr": "err.log"}),
        ("-D /scratch/run", {"working_directory": "/scratch/run"}),
        ("--chdir=/scratch/run", {"working_directory": "/scratch/run"}),
        ("--comment='nightly run'", {"comment": "nightly run"}),
    ],
)
def test_single_directive(directive: str, expected: dict[str, Any]) -> None:
    assert parse_sbatch_directives(_script(directive)) == expected


@pytest.mark.parametrize(
    ("directive", "expected"),
    [
        ("-J name # the job name", {"name": "name"}),
        ("--time=10 #ten minutes", {"time_limit": 600}),
        ('-J "my job" # quoted', {"name": "my job"}),
        ("-J 'my # job'", {"name": "my # job"}),  # '#' inside quotes is kept
        ('--job-name="a b c"', {"name": "a b c"}),
        ("-o log#1.txt", {"stdout": "log#1.txt"}),  # '#' not after a space is kept
        ("# -J hidden", {}),
    ],
)
def test_comments_and_quotes(directive: str, expected: dict[str, Any]) -> None:
    assert parse_sbatch_directives(_script(directive)) == expected


def test_directives_after_first_command_are_ignored() -> None:
    script = "#!/bin/sh\n#SBATCH -J first\necho hi\n#SBATCH -J second\n#SBATCH -c 4\n"
    assert parse_sbatch_directives(script) == {"name": "first"}


def test_directives_after_comments_and_blank_lines_are_read() -> None:
    script = (
        "#!/bin/bash\n"
        "\n"
        "# a comment\n"
        "   # an indented comment\n"
        "#SBATCH -J one\n"
        "\n"
        "##SBATCH -c 99\n"  # doubled '#' disables a directive, as in sbatch
        "   \t\n"
        "#SBATCH --mem=1G\n"
        "python run.py\n"
    )
    assert parse_sbatch_directives(script) == {"name": "one", "memory": 1024}


def test_only_column_zero_sbatch_counts() -> None:
    # sbatch matches "#SBATCH" at the start of the line only; an indented one is a comment.
    script = "#!/bin/bash\n  #SBATCH -J indented\n#SBATCHX -J glued\n#SBATCH -c 1\n"
    assert parse_sbatch_directives(script) == {"cpus_per_task": 1}


def test_several_options_on_several_lines_and_override() -> None:
    script = _script("-J a -p p1", "--ntasks=4 -N 1 --hold", "--job-name=b")
    assert parse_sbatch_directives(script) == {
        "name": "b",
        "partition": "p1",
        "ntasks": 4,
        "nodes": 1,
        "hold": True,
    }


def test_unknown_options_are_collected_in_order() -> None:
    script = _script("--nodelist=n1 --hint=nomultithread -J x", "--distribution=block -v")
    assert parse_sbatch_directives(script) == {
        "name": "x",
        "_unknown": ["--nodelist=n1", "--hint=nomultithread", "--distribution=block", "-v"],
    }


def test_slurms_own_directives_are_read() -> None:
    script = _script("--exclusive -C gpu&ib", "--reservation=maint")
    assert parse_sbatch_directives(script) == {
        "exclusive": True, "constraint": "gpu&ib", "reservation": "maint"}


@pytest.mark.parametrize(("lines", "gpus"), [
    (("-N 2", "--gpus-per-node=a100:2"), 4),
    (("-n 3", "--gpus-per-task=1"), 3),
    (("--gpus-per-node=2", "--gpus=1"), 1),  # --gpus wins
])
def test_gpus_per_node_or_task_count_gpus_in_all(lines: tuple[str, ...], gpus: int) -> None:
    assert parse_sbatch_directives(_script(*lines))["gpus"] == gpus


def test_the_directives_of_common_cluster_scripts() -> None:
    script = _script("--mail-type=END,FAIL --mail-user=ana@example.org -q normal",
                     "--no-requeue --open-mode=append --kill-on-invalid-dep=yes",
                     "--export=ALL,OMP_PLACES=cores")
    assert parse_sbatch_directives(script) == {
        "mail_type": "END,FAIL", "mail_user": "ana@example.org", "qos": "normal",
        "requeue": False, "open_mode": "append", "kill_on_invalid_dependency": True,
        "environment": {"OMP_PLACES": "cores"},
    }
    assert parse_sbatch_directives(_script("--requeue"))["requeue"] is True


@pytest.mark.parametrize(("lines", "ntasks"), [
    (("-N 2", "--ntasks-per-node=4"), 8),
    (("--ntasks-per-node=3",), 3),
    (("-N 3", "--tasks-per-node=2"), 6),
    (("--ntasks-per-node=3", "-n 5"), 5),  # --ntasks wins, as in sbatch
])
def test_ntasks_per_node_counts_tasks_over_the_nodes(lines: tuple[str, ...], ntasks: int
                                                      ) -> None:
    assert parse_sbatch_directives(_script(*lines))["ntasks"] == ntasks


@pytest.mark.parametrize(("line", "field"), [
    ("--kill-on-invalid-dep=maybe", "kill_on_invalid_dependency"),
    ("--export=HOME", "export"),
    ("--ntasks-per-node=many", "ntasks_per_node"),
])
def test_a_bad_value_of_a_new_directive_names_its_field(line: str, field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_sbatch_directives(_script(line))
    assert caught.value.field == field


def test_no_directives() -> None:
    assert parse_sbatch_directives("#!/bin/bash\necho hi\n") == {}
    assert parse_sbatch_directives("") == {}


@pytest.mark.parametrize(
    ("directive", "field", "value"),
    [
        ("-c two", "cpus_per_task", "two"),
        ("--ntasks=-1", "ntasks", "-1"),
        ("-N 4-2", "nodes", "4-2"),
        ("--nodes=x", "nodes", "x"),
        ("--priority=high", "priority", "high"),
        ("-G many", "gpus", "many"),
        ("--gres=gpu:a100:x", "gpus", "x"),
        ("--gres=gpu:a:b:1", "gpus", "--gres=gpu:a:b:1"),
        ("--mem=lots", "memory", "lots"),
        ("--mem-per-cpu=1.5M", "memory_per_cpu", "1.5M"),
        ("-t soon", "time_limit", "soon"),
        ("--time=1:99", "time_limit", "1:99"),
    ],
)
def test_bad_values_name_the_field(directive: str, field: str, value: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_sbatch_directives(_script(directive))
    assert info.value.field == field
    assert info.value.value == value


def test_bad_int_reason() -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_sbatch_directives(_script("--cpus-per-task=2.5"))
    assert info.value.reason == "not an integer"


@pytest.mark.parametrize(
    ("directive", "field"),
    [("-J", "name"), ("--time", "time_limit"), ("--mem=", "memory"), ("-c 2 -n", "ntasks")],
)
def test_missing_value(directive: str, field: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_sbatch_directives(_script(directive))
    assert info.value.field == field
    assert info.value.value == ""
    assert info.value.reason == "missing value"


def test_unbalanced_quote_is_an_error() -> None:
    with pytest.raises(InvalidSpecError):
        parse_sbatch_directives(_script('-J "unterminated'))


@pytest.mark.parametrize(("value", "expected"), [
    ("B:USR1@90", "B:USR1@90"), ("USR1", "USR1@60"), ("10@5", "USR1@5"),
    ("RB:SIGTERM@0", "RB:TERM@0"), ("b:usr2", "B:USR2@60"),
])
def test_sbatch_signal_options(value: str, expected: str) -> None:
    assert str(parse_warn_signal(value)) == expected
    assert parse_sbatch_directives(_script(f"--signal={value}"))["signal"] == value


@pytest.mark.parametrize("value", ["X:USR1", ":USR1", "USR1@-1", "USR1@70000", "NOPE@5", "B:"])
def test_a_bad_sbatch_signal_is_refused(value: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_warn_signal(value)
    assert caught.value.field == "signal"
