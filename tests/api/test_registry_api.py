"""POST /v1/registry/jobs: jobs run by outside schedulers, upserted into the ledger."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from api_client import Api

from jobgate.service.auth import Principal

URL = "/v1/registry/jobs"


def record(job_id: int | None = 1001, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"job_id": job_id, "cluster_id": "daint", "user": "ana",
                            "state": "RUNNING", "job_name": "sim", "partition": "normal",
                            "compute_project_id": "proj1", "submitted": "2026-01-02T03:04:05Z",
                            "start": "2026-01-02T03:05:05Z"}
    if job_id is None:
        del base["job_id"]
    return base | fields


def push(api: Api, *records: dict[str, Any] | Any, **kw: Any) -> dict[str, Any]:
    answer = api.post(URL, json=list(records), **kw)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def events(api: Api, job_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.get(f"/v1/jobs/{job_id}/events").json()["events"]
    return found


def test_created_updated_unchanged_rejected_and_their_events(api: Api) -> None:
    first = push(api, record(1001), record(1002, state="PENDING"))
    assert [r["status"] for r in first["results"]] == ["created", "created"]
    assert (first["created"], first["updated"], first["rejected"]) == (2, 0, 0)
    job_id = first["results"][0]["id"]

    again = push(api, record(1001, state="COMPLETED", end="2026-01-02T04:05:05Z"),
                 record(1002, state="PENDING"), record(1003, state="NOT_A_STATE"),
                 record(1004, user=""))
    assert [r["status"] for r in again["results"]] == [
        "updated", "unchanged", "rejected", "rejected"]
    assert again["results"][0]["id"] == job_id
    assert again["results"][1]["id"] == first["results"][1]["id"]
    bad_state, no_user = again["results"][2], again["results"][3]
    assert bad_state["field"] == "state" and "PENDING" in bad_state["reason"]
    assert bad_state["id"] is None
    assert no_user["field"] == "user"

    job = api.get(f"/v1/jobs/{job_id}").json()
    assert (job["state"], job["source"], job["end_time"]) == (
        "COMPLETED", "registry", "2026-01-02T04:05:05Z")
    log = events(api, job_id)
    assert [(e["from_state"], e["to_state"], e["reason"]) for e in log] == [
        (None, "RUNNING", "registry: created"),
        ("RUNNING", "COMPLETED", "registry: updated"),
    ]
    assert log[1]["data"]["fields"] == ["state", "end_time"]
    # Unchanged writes no event; rejected records wrote no job.
    assert len(events(api, first["results"][1]["id"])) == 1
    assert len(api.get("/v1/jobs", params={"cluster": "daint"}).json()["jobs"]) == 2


def test_fields_map_onto_the_ledger(api: Api) -> None:
    answer = push(api, record(
        77, group_id=70, group_index=7, nodes="nid[001-004]", time_limit="1-00:00:00",
        allocated_resources=["cpu=256", "mem=512G", "node=4", "gres/gpu=16", "billing=256"],
        working_directory="/scratch/ana/run", project_oid="p-123", priority_id="high",
        reservation="maint", reason="None", cluster_cockpit_id=991,
        additional_data={"exit_code": "0:0", "qos": "normal"}, end="2026-01-02T04:00:00+01:00",
        state="cd"))
    job = api.get(f"/v1/jobs/{answer['results'][0]['id']}").json()
    assert {k: job[k] for k in (
        "name", "state", "user_name", "cluster", "partition", "account", "num_nodes", "cpus",
        "memory", "gpus", "time_limit", "working_directory", "array_job_id", "array_task_id",
        "submit_time", "start_time", "end_time", "state_reason", "held", "final",
    )} == {
        "name": "sim", "state": "COMPLETED", "user_name": "ana", "cluster": "daint",
        "partition": "normal", "account": "proj1", "num_nodes": 4, "cpus": 256,
        "memory": 512 * 1024, "gpus": 16, "time_limit": 86400,
        "working_directory": "/scratch/ana/run", "array_job_id": 70, "array_task_id": 7,
        "submit_time": "2026-01-02T03:04:05Z", "start_time": "2026-01-02T03:05:05Z",
        "end_time": "2026-01-02T03:00:00Z", "state_reason": "None", "held": False,
        "final": True,
    }
    assert job["registry_data"] == {
        "project_oid": "p-123", "priority_id": "high", "reservation": "maint",
        "cluster_cockpit_id": 991, "nodes": "nid[001-004]",
        "allocated_resources": ["cpu=256", "mem=512G", "node=4", "gres/gpu=16", "billing=256"],
        "additional_data": {"exit_code": "0:0", "qos": "normal"},
    }
    held = push(api, record(78, state="PENDING", reason="JobHeldUser", start=None))
    job = api.get(f"/v1/jobs/{held['results'][0]['id']}").json()
    assert (job["held"], job["state_reason"], job["start_time"]) == (True, "JobHeldUser", None)


def test_group_key_upserts_and_conflicting_keys_are_rejected(api: Api) -> None:
    # An array task known first by its group only, then with its job id.
    made = push(api, record(None, group_id=500, group_index=0),
                record(None, group_id=500, group_index=1))
    task0, task1 = (r["id"] for r in made["results"])
    named = push(api, record(501, group_id=500, group_index=0, state="COMPLETED"))
    assert named["results"][0] == {"index": 0, "status": "updated", "id": task0,
                                   "field": None, "reason": None}
    job = api.get(f"/v1/jobs/{task0}").json()
    assert (job["state"], job["array_job_id"], job["array_task_id"]) == ("COMPLETED", 500, 0)
    # Now (daint, 501) is task 0: the job id alone finds it too.
    assert push(api, record(501, state="COMPLETED", group_id=500, group_index=0)
                )["results"][0]["status"] == "unchanged"
    # job_id names task 0 but the group names task 1: which job is meant?
    clash = push(api, record(501, group_id=500, group_index=1))["results"][0]
    assert (clash["status"], clash["field"]) == ("rejected", "job_id")
    assert str(task0) in clash["reason"] and str(task1) in clash["reason"]
    # The same keys on another cluster are another job.
    other = push(api, record(501, cluster_id="eiger"))["results"][0]
    assert other["status"] == "created" and other["id"] not in (task0, task1)
    half = push(api, record(None, group_id=9))["results"][0]
    assert (half["status"], half["field"]) == ("rejected", "group_index")
    nameless = push(api, record(None))["results"][0]
    assert (nameless["status"], nameless["field"]) == ("rejected", "job_id")


def test_one_job_twice_in_a_batch_lands_in_order(api: Api) -> None:
    answer = push(api, record(5, state="PENDING", start=None), record(5, state="RUNNING"),
                  record(5, state="COMPLETED", end="2026-01-02T05:00:00Z"))
    assert [r["status"] for r in answer["results"]] == ["created", "updated", "updated"]
    job_id = answer["results"][0]["id"]
    assert {r["id"] for r in answer["results"]} == {job_id}
    assert [e["to_state"] for e in events(api, job_id)] == ["PENDING", "RUNNING", "COMPLETED"]


def test_the_scheduler_may_move_a_final_state_and_it_is_logged(api: Api) -> None:
    job_id = push(api, record(9, state="FAILED"))["results"][0]["id"]
    assert push(api, record(9, state="REQUEUED"))["results"][0]["status"] == "updated"
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert (job["state"], job["requeue_count"]) == ("PENDING", 1)
    moved = events(api, job_id)[-1]
    assert (moved["from_state"], moved["to_state"]) == ("FAILED", "PENDING")
    assert moved["data"]["requeued"] is True  # a requeue: within the ledger's rules
    assert "against_ledger_rules" not in moved["data"]
    # Final -> another final state: taken, and flagged as against the ledger's rules.
    push(api, record(9, state="COMPLETED"))
    push(api, record(9, state="CANCELLED"))
    last = events(api, job_id)[-1]
    assert (last["from_state"], last["to_state"], last["data"]["against_ledger_rules"]) == (
        "COMPLETED", "CANCELLED", True)


def test_registry_jobs_show_in_lists_filters_and_stats(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    push(api, record(1, state="COMPLETED", end="2026-01-02T03:15:05Z",
                     allocated_resources="cpu=4"),
         record(2, user="bob", state="RUNNING"), record(3, cluster_id="eiger", state="PENDING"))
    own = api.submit(command="true", hold=True)

    def names(params: dict[str, Any], headers: dict[str, str] | None = None) -> list[Any]:
        page = api.get("/v1/jobs", params=params, headers=headers or api.headers).json()
        return sorted((j["cluster"], j["user_name"], j["state"]) for j in page["jobs"])

    assert names({"cluster": "daint"}) == [("daint", "ana", "COMPLETED"),
                                           ("daint", "bob", "RUNNING")]
    assert names({"state": "PENDING"}) == [("eiger", "ana", "PENDING"),
                                           ("local", "admin", "PENDING")]
    assert names({"user": "bob"}) == [("daint", "bob", "RUNNING")]
    # A user sees their own registry jobs, and no one else's.
    assert names({}, ana) == [("daint", "ana", "COMPLETED"), ("eiger", "ana", "PENDING")]
    stats = api.get("/v1/stats", params={"group_by": "cluster"})
    assert stats.status_code == 200, stats.text
    by_cluster = {g["key"]: g for g in stats.json()["groups"]}
    assert (by_cluster["daint"]["count"], by_cluster["daint"]["cpus"]) == (2, 5)
    assert by_cluster["eiger"]["count"] == 1
    assert by_cluster["local"]["count"] == 1
    api.post(f"/v1/jobs/{own['id']}/cancel")


def test_every_verb_on_a_registry_job_is_501(api: Api) -> None:
    pending = push(api, record(1, state="PENDING", start=None))["results"][0]["id"]
    running = push(api, record(2, state="RUNNING"))["results"][0]["id"]
    ended = push(api, record(3, state="COMPLETED", working_directory="/etc")
                 )["results"][0]["id"]
    calls = [
        ("post", f"/v1/jobs/{pending}/cancel", None, "cancel"),
        ("post", f"/v1/jobs/{pending}/hold", None, "hold"),
        ("post", f"/v1/jobs/{pending}/release", None, "release"),
        ("post", f"/v1/jobs/{running}/suspend", None, "suspend"),
        ("post", f"/v1/jobs/{running}/resume", None, "resume"),
        ("post", f"/v1/jobs/{running}/requeue", None, "requeue"),
        ("post", f"/v1/jobs/{running}/signal", {"signal": "USR1"}, "signal"),
        ("post", f"/v1/jobs/{running}/notify", {"message": "hi"}, "notify"),
        ("patch", f"/v1/jobs/{pending}", {"time_limit": 60}, "modify"),
        ("patch", f"/v1/jobs/{running}", {"name": "x"}, "modify"),
        ("get", f"/v1/jobs/{running}/stdout", None, "stdout"),
        ("get", f"/v1/jobs/{running}/stderr", None, "stderr"),
        ("get", f"/v1/jobs/{running}/script", None, "script"),
        # Its directory is a path another scheduler reported: never served here.
        ("get", f"/v1/jobs/{ended}/files", None, "files"),
        ("get", f"/v1/jobs/{ended}/files/passwd", None, "files"),
        ("delete", f"/v1/jobs/{ended}", None, "delete"),
    ]
    for method, path, body, verb in calls:
        kwargs: dict[str, Any] = {"headers": api.headers}
        if body is not None:
            kwargs["json"] = body
        answer = getattr(api.client, method)(path, **kwargs)
        assert answer.status_code == 501, (path, answer.text)
        assert answer.json()["details"]["verb"] == verb
        assert "registry job" in answer.json()["message"]
    # Nothing changed.
    assert api.get(f"/v1/jobs/{pending}").json()["state"] == "PENDING"
    assert api.get(f"/v1/jobs/{ended}").status_code == 200
    assert len(events(api, running)) == 1


def test_the_engine_never_runs_a_registry_job(api: Api) -> None:
    # On a cluster named like the local one, pending and running: the engine
    # neither launches the first nor adopts the second.
    answer = push(api, record(1, cluster_id="local", state="PENDING", start=None),
                  record(2, cluster_id="local", state="RUNNING"))
    pending, running = (r["id"] for r in answer["results"])
    # A job of our own, submitted after, runs to its end past them.
    own = api.submit(command="true")
    assert api.wait_final(own["id"])["state"] == "COMPLETED"
    time.sleep(0.3)  # a few more engine rounds
    assert api.get(f"/v1/jobs/{pending}").json()["state"] == "PENDING"
    assert api.get(f"/v1/jobs/{running}").json()["state"] == "RUNNING"
    assert len(events(api, pending)) == len(events(api, running)) == 1


def test_only_an_admin_may_push(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    answer = api.post(URL, json=[record(1)], headers=ana)
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"
    assert api.post(URL, json=[record(1)], headers={}).status_code == 401
    assert api.get("/v1/jobs", params={"cluster": "daint"}).json()["jobs"] == []


def test_batch_limits_and_bad_bodies(api: Api) -> None:
    over = api.post(URL, json=[record(i) for i in range(1001)])
    assert over.status_code == 413
    assert over.json()["details"] == {"limit": "registry_max_batch", "max": 1000}
    assert "registry_max_batch" in over.json()["message"]
    assert api.post(URL, json=[]).status_code == 422
    assert api.post(URL, json={"job_id": 1}).status_code == 422
    # Not objects, unknown fields, bad values, text a store cannot hold: each
    # is rejected alone, and the good record still lands.
    answer = push(api, "not a record", record(1, colour="red"), record(2, time_limit="soon"),
                  record(3, job_name="x" * 257), record(4, job_name="nul\x00"),
                  record(5, nodes="nid[9-1]"), record(6, allocated_resources=["mem=lots"]),
                  record(7, submitted="yesterday"), record(8, additional_data={"k": "\x00"}),
                  record(9, group_index=2**31, group_id=1),
                  record(11, additional_data={"n": 2**70}), record(10))
    statuses = [(r["status"], r["field"]) for r in answer["results"]]
    assert statuses == [
        ("rejected", "record"), ("rejected", "colour"), ("rejected", "time_limit"),
        ("rejected", "job_name"), ("rejected", "job_name"), ("rejected", "nodes"),
        ("rejected", "allocated_resources.mem"), ("rejected", "submitted"),
        ("rejected", "additional_data"), ("rejected", "group_index"),
        ("rejected", "additional_data"), ("created", None),
    ]
    assert all(r["reason"] for r in answer["results"][:-1])
    assert len(api.get("/v1/jobs", params={"cluster": "daint"}).json()["jobs"]) == 1


def test_concurrent_batches_make_each_job_once_and_log_every_move(api: Api) -> None:
    # Four pushers race over the same 100 jobs, each moving them through states:
    # each key is one job, and each job's log is one unbroken chain of moves.
    admin = Principal("admin", is_admin=True)
    states = ["PENDING", "RUNNING", "COMPLETED", "REQUEUED", "RUNNING", "FAILED"]
    errors: list[BaseException] = []

    def pusher(offset: int) -> None:
        try:
            for step in range(len(states)):
                state = states[(step + offset) % len(states)]
                outcomes = api.gateway.registry.ingest(
                    [record(i, state=state) for i in range(100)], admin)
                assert not [o for o in outcomes if o.status == "rejected"], outcomes
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=pusher, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    jobs = api.get("/v1/jobs", params={"cluster": "daint", "limit": 1000}).json()["jobs"]
    assert len(jobs) == 100
    for job in jobs[:10]:
        log = events(api, job["id"])
        assert log[0]["from_state"] is None
        for before, after in itertools.pairwise(log):
            assert after["from_state"] == before["to_state"], log
        assert log[-1]["to_state"] == job["state"]
