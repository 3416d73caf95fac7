"""Idempotency-Key: one job per key, whatever the repeats and races."""

from __future__ import annotations

import threading
from typing import Any

from api_client import Api


def post(api: Api, key: str, body: dict[str, Any]) -> Any:
    return api.post("/v1/jobs", json=body, headers={**api.headers, "Idempotency-Key": key})


def count_jobs(api: Api) -> int:
    return len(api.get("/v1/jobs", params={"limit": 1000}).json()["jobs"])


def test_a_repeat_returns_the_first_answer_and_creates_nothing(api: Api) -> None:
    first = post(api, "k-1", {"command": "echo once", "tags": ["a", "b"]})
    assert first.status_code == 201
    api.wait_final(first.json()["id"])
    # The same request written another way is the same request.
    again = post(api, "k-1", {"tags": ["a", "b"], "command": "echo once"})
    assert again.status_code == 201
    assert again.json() == first.json()  # the original body, not today's state
    assert count_jobs(api) == 1


def test_the_same_key_with_another_body_is_422(api: Api) -> None:
    assert post(api, "k-2", {"command": "true"}).status_code == 201
    other = post(api, "k-2", {"command": "false"})
    assert other.status_code == 422
    assert other.json()["details"][0]["field"] == "Idempotency-Key"
    assert count_jobs(api) == 1


def test_keys_belong_to_their_user(api: Api) -> None:
    ana = api.add_user("ana", "ana-token")
    assert post(api, "shared", {"command": "true"}).status_code == 201
    theirs = api.post("/v1/jobs", json={"command": "true"},
                      headers={**ana, "Idempotency-Key": "shared"})
    assert theirs.status_code == 201 and theirs.json()["user_name"] == "ana"
    assert count_jobs(api) == 2


def test_a_failed_request_does_not_use_up_its_key(api: Api) -> None:
    assert post(api, "k-3", {"command": "true", "partition": "nope"}).status_code == 422
    assert post(api, "k-3", {"command": "true"}).status_code == 201


def test_the_same_key_sent_concurrently_creates_one_job(api: Api) -> None:
    answers: list[Any] = []
    go = threading.Barrier(8)

    def send() -> None:
        go.wait()
        answers.append(post(api, "race", {"command": "true", "hold": True}))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert count_jobs(api) == 1
