"""Registry batches in bulk: rounds of one batch, comparisons made by the store,
the staged rows and the fast JSON body, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from api_client import Api
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from jobgate.api.routes.registry import parse_json
from jobgate.domain.registry import ledger_columns, parse_record
from jobgate.service.auth import Principal
from jobgate.service.registry import Outcome, RegistryService, chunk_bounds
from jobgate.store.registry import RegistryRepository
from jobgate.store.tables import JobRow

URL = "/v1/registry/jobs"


def record(job_id: int | None = 1001, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"job_id": job_id, "cluster_id": "daint", "user": "ana",
                            "state": "RUNNING", "submitted": "2026-01-02T03:04:05Z",
                            "start": "2026-01-02T03:05:05Z"}
    if job_id is None:
        del base["job_id"]
    return base | fields


def push(api: Api, *records: dict[str, Any]) -> list[dict[str, Any]]:
    answer = api.post(URL, json=list(records))
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def moves(api: Api, job_id: int) -> list[tuple[str | None, str, list[str] | None]]:
    log = api.get(f"/v1/jobs/{job_id}/events").json()["events"]
    return [(e["from_state"], e["to_state"], e["data"].get("fields")) for e in log]


def test_one_batch_names_jobs_again_by_either_key_and_lands_in_order(api: Api) -> None:
    # Four rounds in one transaction: each key again only after its earlier use.
    results = push(
        api,
        record(7, state="PENDING", start=None),
        record(None, group_id=70, group_index=1, state="PENDING", start=None),
        record(7),
        record(None, group_id=70, group_index=1),
        # The array task named by its job id too: the same job, its id now set.
        record(71, group_id=70, group_index=1, state="COMPLETED",
               end="2026-01-02T04:00:00Z"),
        record(7, state="COMPLETED", end="2026-01-02T04:00:00Z"),
        record(71, group_id=70, group_index=1, state="COMPLETED",
               end="2026-01-02T04:00:00Z"),
    )
    assert [r["status"] for r in results] == [
        "created", "created", "updated", "updated", "updated", "updated", "unchanged"]
    job, task = results[0]["id"], results[1]["id"]
    assert [r["id"] for r in results] == [job, task, job, task, task, job, task]
    assert moves(api, job) == [
        (None, "PENDING", None), ("PENDING", "RUNNING", ["state", "start_time"]),
        ("RUNNING", "COMPLETED", ["state", "end_time"])]
    assert moves(api, task) == [
        (None, "PENDING", None), ("PENDING", "RUNNING", ["state", "start_time"]),
        ("RUNNING", "COMPLETED", ["native_id", "state", "end_time"])]
    row = api.get(f"/v1/jobs/{task}").json()
    assert (row["array_job_id"], row["array_task_id"], row["state"]) == (70, 1, "COMPLETED")
    # A record overwrites every decided column: one without a job id finds the
    # task by its group and clears its job id. The next names the task by that
    # job id, as the batch began: it applies after the first, when (daint, 71)
    # names no job any more, so it makes one.
    again = push(api, record(None, group_id=70, group_index=1, state="FAILED",
                             end="2026-01-02T04:00:00Z"),
                 record(71, state="FAILED", end="2026-01-02T04:00:00Z"))
    assert [r["status"] for r in again] == ["updated", "created"]
    assert again[0]["id"] == task and again[1]["id"] not in (job, task)
    assert moves(api, task)[-1] == ("COMPLETED", "FAILED", ["native_id", "state"])
    assert len(moves(api, again[1]["id"])) == 1


def test_what_a_record_leaves_out_or_orders_otherwise_is_no_change(api: Api) -> None:
    first = push(api, record(5, additional_data={"qos": "normal", "exit": "0:0",
                                                 "nested": {"a": 1, "b": [1, 2]}}))[0]
    # The same object with its keys in another order: unchanged on both stores.
    same = push(api, record(5, additional_data={"nested": {"b": [1, 2], "a": 1},
                                                "exit": "0:0", "qos": "normal"}))[0]
    assert (same["status"], same["id"]) == ("unchanged", first["id"])
    # No submit time in the record: the job keeps the one it has.
    later = push(api, record(5, submitted=None, start=None,
                             additional_data={"qos": "normal", "exit": "0:0",
                                              "nested": {"a": 1, "b": [1, 2]}}))[0]
    assert later["status"] == "updated"
    job = api.get(f"/v1/jobs/{first['id']}").json()
    assert (job["submit_time"], job["start_time"]) == ("2026-01-02T03:04:05Z", None)
    assert moves(api, first["id"])[-1] == ("RUNNING", "RUNNING", ["start_time"])
    changed = push(api, record(5, submitted=None, start=None,
                               additional_data={"qos": "high"}))[0]
    assert changed["status"] == "updated"
    assert moves(api, first["id"])[-1][2] == ["registry_data"]


def test_consecutive_batches_never_see_each_others_staged_rows(api: Api) -> None:
    # Each batch stages its rows in a temporary table of its connection: the
    # next batch on that connection (the pool reuses it) starts from none.
    for size in (30, 10, 20):
        results = push(api, *[record(i, state="PENDING", start=None) for i in range(size)])
        assert len(results) == size
    final = push(api, *[record(i) for i in range(30)])
    assert [r["status"] for r in final] == ["updated"] * 30
    assert len({r["id"] for r in final}) == 30


def test_compare_with_locks_answers_as_without(api: Api) -> None:
    push(api, record(1), record(None, group_id=9, group_index=0, state="PENDING", start=None))
    rows = [ledger_columns(parse_record(data)) for data in (
        record(1), record(1, state="COMPLETED", end="2026-01-02T04:00:00Z"),
        record(None, group_id=9, group_index=0, state="PENDING", start=None),
        record(2), record(1, group_id=9, group_index=0))]
    with api.gateway.sessions.begin() as session:
        repo = RegistryRepository(session)
        repo.stage(list(enumerate(rows)))
        plain = repo.compare(range(len(rows))).result()
        locked = repo.compare(range(len(rows)), lock=True).result()
    assert plain == locked
    assert [(m.id, m.changed) for m in plain[:4]] == [
        (plain[0].id, ()), (plain[0].id, ("state", "end_time")), (plain[2].id, ()),
        (None, ())]
    assert plain[0].id != plain[2].id
    # Both keys, each naming another job: the service rejects this one.
    assert (plain[4].by_native, plain[4].by_array) == (plain[0].id, plain[2].id)
    assert isinstance(plain[0].updated_at, datetime)
    assert plain[0].updated_at.utcoffset() == timedelta(0)


def test_the_body_reads_as_the_standard_json_module_reads_it(api: Api) -> None:
    # Text pydantic-core refuses (a lone surrogate) is read by json instead:
    # that record is rejected alone, as before, and the others land.
    body = b"[" + orjson.dumps(record(1, job_name="ok")) + b", " + orjson.dumps(
        record(2)).replace(b'"ana"', b'"\\ud800"') + b"]"
    answer = api.post(URL, content=body, headers={**api.headers,
                                                  "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(r["status"], r["field"]) for r in results] == [("created", None),
                                                            ("rejected", "user")]
    assert "Unicode" in results[1]["reason"]
    parsed = parse_json(b'[{"n": 1180591620717411303424, "x": NaN, "y": 1.0}]')
    assert (parsed[0]["n"], parsed[0]["y"], math.isnan(parsed[0]["x"])) == (2**70, 1.0, True)
    assert parse_json(b'["\\ud800"]') == ["\ud800"]
    bad = api.post(URL, content=b"[{", headers={**api.headers,
                                                "Content-Type": "application/json"})
    assert bad.status_code == 422


def ingest_in_chunks(api: Api, chunk: int, *records: dict[str, Any]) -> list[Outcome]:
    """The batch through a service that parses, stages and compares up to
    `chunk` records at a time (the first chunks fewer: see chunk_bounds)."""
    service = RegistryService(api.gateway.sessions, chunk=chunk)
    return service.ingest(list(records), Principal("admin", is_admin=True))


def test_chunk_bounds_cover_the_batch_once_in_order() -> None:
    assert chunk_bounds(1000, 300) == [(0, 50), (50, 150), (150, 350), (350, 650),
                                       (650, 950), (950, 1000)]
    assert chunk_bounds(30, 300) == [(0, 30)]
    assert chunk_bounds(5, 2) == [(0, 1), (1, 3), (3, 5)]
    assert chunk_bounds(3, 12) == [(0, 2), (2, 3)]


def test_a_batch_in_small_chunks_lands_as_in_one(api: Api) -> None:
    # The same records, in chunks of every size: each chunk is compared after
    # the last one's writes, so a job made or changed in one chunk is found
    # again in the next, by either key, and the order sent holds.
    def batch(cluster: str) -> list[dict[str, Any]]:
        return [
            record(7, cluster_id=cluster, state="PENDING", start=None),
            record(None, cluster_id=cluster, group_id=70, group_index=1, state="PENDING",
                   start=None),
            record(7, cluster_id=cluster),
            record(None, cluster_id=cluster, group_id=70, group_index=1),
            {"cluster_id": cluster},  # no user: rejected alone
            record(71, cluster_id=cluster, group_id=70, group_index=1, state="COMPLETED",
                   end="2026-01-02T04:00:00Z"),
            record(7, cluster_id=cluster, state="COMPLETED", end="2026-01-02T04:00:00Z"),
            record(71, cluster_id=cluster, group_id=70, group_index=1, state="COMPLETED",
                   end="2026-01-02T04:00:00Z"),
            # Its job id names the job, its group the task: refused.
            record(7, cluster_id=cluster, group_id=70, group_index=1),
        ]

    expected = ["created", "created", "updated", "updated", "rejected", "updated",
                "updated", "unchanged", "rejected"]
    for chunk in (1, 2, 3, 4, 6, 300):
        outcomes = ingest_in_chunks(api, chunk, *batch(f"c{chunk}"))
        assert [o.status for o in outcomes] == expected, chunk
        job, task = outcomes[0].job_id, outcomes[1].job_id
        assert [o.job_id for o in outcomes] == [job, task, job, task, None, task, job, task,
                                                None], chunk
        assert (outcomes[4].field, outcomes[8].field) == ("user", "job_id")
        assert moves(api, job) == [
            (None, "PENDING", None), ("PENDING", "RUNNING", ["state", "start_time"]),
            ("RUNNING", "COMPLETED", ["state", "end_time"])], chunk
        assert moves(api, task) == [
            (None, "PENDING", None), ("PENDING", "RUNNING", ["state", "start_time"]),
            ("RUNNING", "COMPLETED", ["native_id", "state", "end_time"])], chunk


def test_a_later_round_of_one_chunk_is_seen_by_the_next(api: Api) -> None:
    # Chunks of 2: [RUNNING, COMPLETED] then [RUNNING]. The second chunk is
    # compared while the first chunk's first round writes, before its second
    # round (the job named again) has: that comparison is made again, or the
    # last record would count as unchanged against the first and be lost.
    outcomes = ingest_in_chunks(
        api, 12, record(9), record(9, state="COMPLETED", end="2026-01-02T04:00:00Z"),
        record(9))
    assert [o.status for o in outcomes] == ["created", "updated", "updated"]
    job = api.get(f"/v1/jobs/{outcomes[0].job_id}").json()
    assert (job["state"], job["requeue_count"]) == ("RUNNING", 1)
    assert [move[:2] for move in moves(api, outcomes[0].job_id)] == [
        (None, "RUNNING"), ("RUNNING", "COMPLETED"), ("COMPLETED", "RUNNING")]


def test_an_error_of_a_statement_sent_ahead_is_raised_as_sqlalchemy_raises_it(
        api: Api) -> None:
    # On PostgreSQL the staging runs in a pipeline and its error comes with a
    # later answer: it must still be SQLAlchemy's IntegrityError (the service
    # retries on it), and the transaction must roll back cleanly.
    columns = ledger_columns(parse_record(record(1)))
    with pytest.raises(IntegrityError), api.gateway.sessions.begin() as session:
        repo = RegistryRepository(session)
        with repo.ahead():
            repo.stage([(0, columns), (0, columns)])  # one place twice
            repo.compare([0]).result()
    assert push(api, record(1))[0]["status"] == "created"


def test_records_retried_after_losing_their_version_keep_their_own_jobs(
        api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Two jobs, named in the batch in the opposite order of their ids. Just
    # before the first write, both change (as a concurrent batch would): both
    # records lose the version they compared, and are retried, their jobs
    # locked. Each must still go to its own job, in that same transaction (a
    # record paired with the other's job would take its key: the whole batch
    # would roll back and run again).
    low, high = (result["id"] for result in push(api, record(21), record(22)))
    write = RegistryRepository.write
    bumped = []

    def meddle(self: RegistryRepository, *args: Any, **kwargs: Any) -> Any:
        if not bumped:
            bumped.append(True)
            self.session.execute(update(JobRow).where(JobRow.id.in_([low, high])).values(
                updated_at=datetime(2030, 1, 1, tzinfo=UTC)))
        return write(self, *args, **kwargs)

    monkeypatch.setattr(RegistryRepository, "write", meddle)
    caplog.set_level(logging.INFO, logger="jobgate.service.registry")
    outcomes = ingest_in_chunks(api, 300, record(22, state="COMPLETED",
                                                 end="2026-01-02T04:00:00Z"),
                                record(21, state="FAILED", end="2026-01-02T04:00:00Z"))
    assert bumped
    assert "collided" not in caplog.text
    assert [(o.status, o.job_id) for o in outcomes] == [("updated", high), ("updated", low)]
    with api.gateway.sessions() as session:
        rows = {job: session.get(JobRow, job) for job in (low, high)}
        assert (rows[high].native_id, rows[high].state) == ("22", "COMPLETED")
        assert (rows[low].native_id, rows[low].state) == ("21", "FAILED")
