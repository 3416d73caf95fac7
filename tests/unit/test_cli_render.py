"""How the CLI shows one job's usage to a person (the --json form stays raw)."""

from __future__ import annotations

from jobgate.cli.render import job_details, stats_lines
from jobgate.client import Client, Job


def test_a_jobs_usage_reads_in_clocks_cpu_seconds_and_mib() -> None:
    lines = stats_lines({
        "id": 7, "state": "COMPLETED", "run_time": 3725, "cpus": 2,
        "elapsed_cpu_time": 7450, "cpu_time": 12.3456, "cpu_user": 12.0, "cpu_system": None,
        "max_rss": 204800, "suspended_seconds": 4.6,
        "allocation": {"node": "vm", "cpus": [0, 1], "memory": 512, "gpus": []},
    })
    assert lines == [
        "id                 7",
        "state              COMPLETED",
        "run_time           1:02:05 (3725 s)",
        "cpus               2",
        "elapsed_cpu_time   2:04:10 (7450 s)",
        "cpu_time           12.346 s",
        "cpu_user           12.000 s",
        "cpu_system         -",
        "max_rss            200.0 MiB (204800 KiB)",
        "suspended_seconds  0:00:05 (5 s)",
        "allocation         node vm, cpus 0,1, memory 512 MiB, gpus -",
    ]


def test_an_allocation_without_memory_asked_shows_none() -> None:
    (line,) = stats_lines({"allocation": {"node": "vm", "cpus": [3], "memory": 0,
                                          "gpus": [0]}})
    assert line == "allocation  node vm, cpus 3, memory -, gpus 0"


def test_show_gives_a_layout_and_record_fields_as_a_person_reads_them() -> None:
    job = Job.from_api(Client("http://127.0.0.1:9", "unused"), {
        "id": 3, "state": "RUNNING",
        "allocation": {"node": "vm", "cpus": [2, 3], "memory": 0, "gpus": []},
        "registry_data": {"qos": "normal", "nodes": ["nid1"], "note": "é"}})
    lines = str(job_details(job)).splitlines()
    assert lines[2:] == ["allocation     node vm, cpus 2,3, memory -, gpus -",
                         'registry_data  {"qos": "normal", "nodes": ["nid1"], "note": "é"}']
