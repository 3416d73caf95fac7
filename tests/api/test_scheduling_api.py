"""The local cluster schedules like a small Slurm: arrays, backfill, reasons, limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_client import Api
from fastapi.testclient import TestClient

from jobgate.api.app import create_app
from jobgate.config import ClusterConfig, PartitionConfig, Settings

ARRAY_SCRIPT = """#!/bin/bash
#SBATCH --array=0-7%2
#SBATCH --cpus-per-task=1
#SBATCH --mem=50M
#SBATCH -t 1:00
#SBATCH -o %A_%a.out
echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID ($SLURM_ARRAY_TASK_COUNT)"
sleep 0.3
"""


@pytest.fixture
def two_cpus(tmp_path: Path, db_url: str) -> Iterator[Api]:
    """A node of 2 CPUs and 1 GiB, with a short partition beside the default one."""
    cluster = ClusterConfig(cpus=2, memory=1024, gpus=0, partitions=[
        PartitionConfig(name="normal", default=True),
        PartitionConfig(name="short", max_time=60, default_time=30, max_cpus_per_job=1,
                        max_memory_per_job=100),
    ])
    settings = Settings.load(home=tmp_path / "home", database_url=db_url, kill_wait=1.0,
                             engine_interval=0.05, clusters={"local": cluster})
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings.admin_token_path.read_text().strip())


def job(api: Api, job_id: int) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
    return found


def wait_until(api: Api, job_id: int, predicate: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = job(api, job_id)
        if predicate(current):
            return current
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: condition never met; last {job(api, job_id)}")


def test_array_script_runs_two_tasks_at_a_time(two_cpus: Api, tmp_path: Path) -> None:
    api = two_cpus
    first = api.submit(script=ARRAY_SCRIPT, working_directory=str(tmp_path))
    array_id = first["array_job_id"]
    assert array_id == first["id"] and first["array_task_id"] == 0
    tasks = api.get("/v1/jobs", params={"limit": 100}).json()["jobs"]
    assert sorted(t["array_task_id"] for t in tasks) == list(range(8))
    finals = [api.wait_final(t["id"]) for t in tasks]
    assert {t["state"] for t in finals} == {"COMPLETED"}
    for task in finals:
        index = task["array_task_id"]
        out = (tmp_path / f"{array_id}_{index}.out").read_text()
        assert out == f"task {index} of {array_id} (8)\n"
    # Never more than two running at once, by the ledger's own times.
    moments = sorted([(datetime.fromisoformat(t["start_time"]), 1) for t in finals]
                     + [(datetime.fromisoformat(t["end_time"]), -1) for t in finals])
    running, peak = 0, 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    assert peak == 2


def test_throttled_tasks_say_why_they_wait(two_cpus: Api) -> None:
    api = two_cpus
    first = api.submit(command="sleep 30", array="0-3%1", time_limit=60)
    wait_until(api, first["id"], lambda j: j["state"] == "RUNNING")
    others = [j for j in api.get("/v1/jobs").json()["jobs"] if j["id"] != first["id"]]
    for other in others:
        assert wait_until(api, other["id"], lambda j: j["state_reason"] is not None
                          )["state_reason"] == "JobArrayTaskLimit"
    for task in [first, *others]:
        api.post(f"/v1/jobs/{task['id']}/cancel")


def test_backfill_protects_the_reservation(two_cpus: Api) -> None:
    api = two_cpus
    long = api.submit(command="sleep 60", cpus_per_task=1, time_limit=100)
    wait_until(api, long["id"], lambda j: j["state"] == "RUNNING")
    wide = api.submit(command="true", cpus_per_task=2, time_limit=10)
    assert wait_until(api, wide["id"], lambda j: j["state_reason"] is not None
                      )["state_reason"] == "Resources"
    late = api.submit(command="sleep 60", cpus_per_task=1, time_limit=200)
    quick = api.submit(command="true", cpus_per_task=1, time_limit=10)
    # The quick job ends before the wide job's reservation: it may go ahead.
    assert api.wait_final(quick["id"])["state"] == "COMPLETED"
    # The late one would delay the wide job: it waits, and says why.
    assert wait_until(api, late["id"], lambda j: j["state_reason"] == "Priority"
                      )["state"] == "PENDING"
    api.post(f"/v1/jobs/{long['id']}/cancel")
    # With the long job gone, the wide job runs first.
    assert api.wait_final(wide["id"])["state"] == "COMPLETED"
    started_late = wait_until(api, late["id"], lambda j: j["start_time"] is not None)
    assert started_late["start_time"] >= job(api, wide["id"])["start_time"]
    api.post(f"/v1/jobs/{late['id']}/cancel")


def test_priority_then_submit_order(two_cpus: Api) -> None:
    api = two_cpus
    blocker = api.submit(command="sleep 60", cpus_per_task=2, time_limit=60)
    wait_until(api, blocker["id"], lambda j: j["state"] == "RUNNING")
    low = api.submit(command="true", cpus_per_task=2, time_limit=5)
    high = api.submit(command="true", cpus_per_task=2, time_limit=5, priority=10)
    api.post(f"/v1/jobs/{blocker['id']}/cancel")
    low_done, high_done = api.wait_final(low["id"]), api.wait_final(high["id"])
    assert high_done["start_time"] < low_done["start_time"]


def test_affinity_environment_and_usage(two_cpus: Api, tmp_path: Path) -> None:
    api = two_cpus
    submitted = api.submit(
        command="grep Cpus_allowed_list /proc/self/status | cut -f2; "
                "echo $SLURM_JOB_NODELIST $SLURM_MEM_PER_NODE $SLURM_NTASKS "
                "$SLURM_JOB_PARTITION $JOBGATE_JOB_PARTITION; "
                "python3 -c 'x = bytearray(30 << 20); sum(range(3000000))'",
        cpus_per_task=1, memory="100M", working_directory=str(tmp_path),
    )
    done = api.wait_final(submitted["id"])
    assert done["state"] == "COMPLETED"
    allowed, env = api.get(f"/v1/jobs/{done['id']}/stdout").text.splitlines()
    assert done["allocation"]["cpus"] == [int(allowed)]
    assert done["allocation"]["memory"] == 100
    assert env.split() == [done["allocation"]["node"], "100", "1", "normal", "normal"]
    assert done["max_rss"] > 30 * 1024
    assert done["cpu_time"] > 0
    assert done["elapsed_cpu_time"] == done["run_time"] * done["cpus"]


def test_memory_per_cpu_and_qos_are_told_as_slurm_tells_them(api: Api) -> None:
    # --mem-per-cpu sets SLURM_MEM_PER_CPU, --mem SLURM_MEM_PER_NODE, never both.
    per_cpu = api.wait_final(api.submit(
        command='echo "${SLURM_MEM_PER_CPU-unset} ${SLURM_MEM_PER_NODE-unset} $SLURM_JOB_QOS"',
        memory_per_cpu="64M", qos="high")["id"])
    assert api.get(f"/v1/jobs/{per_cpu['id']}/stdout").text == "64 unset high\n"


def test_partition_limits_refuse_at_submit(two_cpus: Api) -> None:
    api = two_cpus
    for fields, field in (({"time_limit": 120}, "time_limit"),
                          ({"time_limit": "UNLIMITED"}, "time_limit"),
                          ({"cpus_per_task": 2}, "cpus_per_task"),
                          ({"memory": "200M"}, "memory")):
        answer = api.post("/v1/jobs", json={"command": "true", "partition": "short",
                                            **fields})
        assert answer.status_code == 422, fields
        assert answer.json()["details"][0]["field"] == field
        assert "short" in answer.json()["message"]
    assert "allows at most 100 MiB a job (got '200 MiB')" in answer.json()["message"]
    defaulted = api.submit(command="true", partition="short")
    assert defaulted["time_limit"] == 30


def test_dependencies(two_cpus: Api, tmp_path: Path) -> None:
    api = two_cpus
    flag = tmp_path / "go"
    first = api.submit(command=f"while [ ! -e {flag} ]; do sleep 0.05; done; exit 0")
    after_ok = api.submit(command="true", dependencies=f"afterok:{first['id']}")
    after_not_ok = api.submit(command="true", dependencies=f"afternotok:{first['id']}")
    killed = api.submit(command="true", dependencies=f"afternotok:{first['id']}",
                        kill_on_invalid_dependency=True)
    assert wait_until(api, after_ok["id"], lambda j: j["state_reason"] == "Dependency"
                      )["state"] == "PENDING"
    flag.touch()
    assert api.wait_final(after_ok["id"])["state"] == "COMPLETED"
    assert wait_until(api, after_not_ok["id"],
                      lambda j: j["state_reason"] == "DependencyNeverSatisfied"
                      )["state"] == "PENDING"
    assert api.wait_final(killed["id"])["state"] == "CANCELLED"
    unknown = api.post("/v1/jobs", json={"command": "true", "dependencies": "afterok:99999"})
    assert unknown.status_code == 422
    assert "99999" in unknown.json()["message"]


def test_dependency_on_a_whole_array(two_cpus: Api) -> None:
    api = two_cpus
    array = api.submit(command="exit $((SLURM_ARRAY_TASK_ID == 2))", array="0-2")
    after_any = api.submit(command="true", dependencies=f"afterany:{array['id']}")
    after_ok = api.submit(command="true", dependencies=f"afterok:{array['id']}")
    assert api.wait_final(after_any["id"])["state"] == "COMPLETED"
    assert wait_until(api, after_ok["id"],
                      lambda j: j["state_reason"] == "DependencyNeverSatisfied")


def test_begin_and_deadline(two_cpus: Api) -> None:
    api = two_cpus
    soon = datetime.now(UTC) + timedelta(seconds=1)
    later = api.submit(command="true", begin=soon.isoformat())
    assert job(api, later["id"])["state"] == "PENDING"
    assert wait_until(api, later["id"], lambda j: j["state_reason"] == "BeginTime")
    done = api.wait_final(later["id"])
    assert done["state"] == "COMPLETED"
    assert datetime.fromisoformat(done["start_time"]) >= soon
    past = datetime.now(UTC) - timedelta(seconds=1)
    missed = api.submit(command="true", deadline=past.isoformat())
    assert api.wait_final(missed["id"])["state"] == "DEADLINE"


@pytest.fixture
def two_gpus(tmp_path: Path, db_url: str) -> Iterator[Api]:
    """A node configured with 2 GPUs (jobgate.toml may say so where nvidia-smi cannot)."""
    cluster = ClusterConfig(cpus=4, memory=1024, gpus=2)
    settings = Settings.load(home=tmp_path / "home", database_url=db_url, kill_wait=1.0,
                             engine_interval=0.05, clusters={"local": cluster})
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings.admin_token_path.read_text().strip())


def test_gpus_are_given_through_cuda_visible_devices(two_gpus: Api, tmp_path: Path) -> None:
    api = two_gpus
    flag = tmp_path / "go"
    hold = f"while [ ! -e {flag} ]; do sleep 0.05; done"
    first = api.submit(command=f"echo $CUDA_VISIBLE_DEVICES; {hold}", gpus=1)
    second = api.submit(command=f"echo $CUDA_VISIBLE_DEVICES $SLURM_JOB_GPUS; {hold}", gpus=1)
    for holder in (first, second):
        wait_until(api, holder["id"], lambda j: j["state"] == "RUNNING")
    waiting = api.submit(command="true", gpus=1)
    none = api.submit(command='echo "[$CUDA_VISIBLE_DEVICES]"')
    assert wait_until(api, waiting["id"], lambda j: j["state_reason"] == "Resources")
    assert api.wait_final(none["id"])["state"] == "COMPLETED"  # needs no GPU: not held up
    flag.touch()
    for job_id in (first["id"], second["id"], waiting["id"]):
        assert api.wait_final(job_id)["state"] == "COMPLETED"
    one = api.get(f"/v1/jobs/{first['id']}/stdout").text.strip()
    two = api.get(f"/v1/jobs/{second['id']}/stdout").text.split()
    assert {one, two[0]} == {"0", "1"} and two[0] == two[1]
    assert api.get(f"/v1/jobs/{none['id']}/stdout").text == "[]\n"
    assert job(api, first["id"])["allocation"]["gpus"] == [int(one)]


def test_singleton_and_any_of(two_cpus: Api, tmp_path: Path) -> None:
    api = two_cpus
    flag = tmp_path / "go"
    hold = f"while [ ! -e {flag} ]; do sleep 0.05; done"
    first = api.submit(command=hold, name="solo", time_limit=60)
    wait_until(api, first["id"], lambda j: j["state"] == "RUNNING")
    second = api.submit(command="true", name="solo", dependencies="singleton")
    other_name = api.submit(command="true", name="other", dependencies="singleton")
    assert api.wait_final(other_name["id"])["state"] == "COMPLETED"
    assert wait_until(api, second["id"], lambda j: j["state_reason"] == "Dependency")
    failing = api.submit(command="exit 1")
    either = api.submit(command="true",
                        dependencies=f"afterok:{first['id']}?afternotok:{failing['id']}")
    assert api.wait_final(either["id"])["state"] == "COMPLETED"  # the second half held
    flag.touch()
    assert api.wait_final(second["id"])["state"] == "COMPLETED"
    assert job(api, second["id"])["start_time"] >= job(api, first["id"])["end_time"]


def test_a_large_throttled_array_does_not_starve_later_jobs(two_cpus: Api) -> None:
    api = two_cpus
    array = api.submit(command="sleep 30", array="0-599%1", time_limit=60)
    wait_until(api, array["id"], lambda j: j["state"] == "RUNNING")
    later = api.submit(command="true", time_limit=10)
    assert api.wait_final(later["id"])["state"] == "COMPLETED"
    api.post(f"/v1/jobs/{array['id']}/cancel")
