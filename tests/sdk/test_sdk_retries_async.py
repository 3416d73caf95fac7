"""Retries of transient failures (faults injected between the SDK and a real
gateway), and the AsyncClient against the same gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from jobgate import AsyncClient, Client, ConflictError, JobState, MissingJobError
from jobgate.client.retry import RetryPolicy
from server_process import LiveServer

WAIT = 60


class Faulty(httpx.HTTPTransport):
    """The real transport, but the first `lose` matching requests fail as told."""

    def __init__(self, fault: str, method: str, lose: int = 1) -> None:
        super().__init__()
        self.fault, self.method, self.lose, self.seen = fault, method, lose, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != self.method or self.lose <= 0:
            return super().handle_request(request)
        self.lose -= 1
        self.seen += 1
        if self.fault == "connect":
            raise httpx.ConnectError("refused (injected)", request=request)
        if self.fault == "429":
            return httpx.Response(429, headers={"Retry-After": "0"}, request=request,
                                  json={"error": "rate_limited", "message": "slow down",
                                        "details": {"retry_after": 0}})
        answer = super().handle_request(request)  # the server acts...
        answer.read()
        answer.close()
        raise httpx.ReadTimeout("answer lost (injected)", request=request)  # ...we never hear


def test_a_lost_submit_answer_is_retried_without_a_second_job(server: LiveServer,
                                                              tag: str) -> None:
    transport = Faulty("lost", "POST")
    with Client(server.url, server.token, transport=transport) as client:
        job = client.submit(command="true", tags=[tag])
        assert transport.seen == 1
        assert [j.id for j in client.list(tag=tag)] == [job.id]


def test_refused_connections_and_429_are_retried(server: LiveServer) -> None:
    with Client(server.url, server.token, transport=Faulty("connect", "GET", 2)) as client:
        assert client.health()
    with Client(server.url, server.token, transport=Faulty("429", "POST")) as client:
        assert client.submit(command="true").id > 0


def test_a_lost_verb_answer_is_not_retried(server: LiveServer) -> None:
    with Client(server.url, server.token) as plain:
        job = plain.submit("#!/bin/bash\nsleep 60\n", hold=True)
    with Client(server.url, server.token, transport=Faulty("lost", "POST")) as client:
        with pytest.raises(ConnectionError):
            client.cancel(job.id)  # not idempotent: the SDK does not guess
        assert client.get(job.id).state is JobState.CANCELLED


def test_retries_give_up_after_the_policy() -> None:
    policy = RetryPolicy(retries=2)
    error = httpx.ConnectError("x")
    assert policy.should_retry(1, "POST", False, error)
    assert not policy.should_retry(2, "POST", False, error)
    assert not policy.should_retry(0, "POST", False, httpx.ReadTimeout("x"))
    assert policy.should_retry(0, "POST", True, httpx.ReadTimeout("x"))
    assert 0 < policy.delay(3) <= policy.cap
    with Client("http://127.0.0.1:9", "t", retries=1) as client, \
            pytest.raises(ConnectionError):
        client.health()


def test_async_client_has_the_same_calls(server: LiveServer, tmp_path: Path,
                                         tag: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, server.token) as client:
            assert await client.health()
            job = await client.submit("#!/bin/bash\nsleep 60\n", hold=True, tags=[tag],
                                      job_name="async")
            assert job.held and job.name == "async"
            assert (await client.modify(job.id, time="2:00")).time_limit == 120
            assert "sleep 60" in await client.script(job.id)
            await client.release(job.id)
            running = await client.wait_for(job.id, timeout=WAIT, states=[JobState.RUNNING])
            assert running.state is JobState.RUNNING
            await client.notify(job.id, "hi")
            await client.signal(job.id, "CONT")
            assert (await client.suspend(job.id)).state is JobState.SUSPENDED
            assert (await client.resume(job.id)).state is JobState.RUNNING
            await client.requeue(job.id, hold=True)
            assert (await client.get(job.id)).held
            later = await client.submit(command="true", begin="2999-01-01T00:00:00Z")
            assert (await client.hold(later.id)).held
            await client.cancel(later.id)
            await client.cancel(job.id)
            with pytest.raises(ConflictError):
                await client.cancel(job.id)
            assert (await client.job_stats(job.id))["id"] == job.id
            events = await client.events(job.id)
            assert events[0]["to_state"] == "PENDING"
            await client.delete(job.id)
            with pytest.raises(MissingJobError):
                await client.get(job.id)

            echo = await client.submit(command="echo out > f.txt; echo hi", tags=[tag])
            chunks = [c async for c in client.follow_output(echo.id)]
            assert b"".join(chunks) == b"hi\n"
            assert await client.output(echo.id) == "hi\n"
            assert (await client.read_output(echo.id, offset=1))[0] == b"i\n"
            assert "f.txt" in {f["path"] for f in await client.files(echo.id)}
            assert (await client.download(echo.id, "f.txt", tmp_path)).read_text() == "out\n"
            many = await client.submit_many([{"command": "true", "tags": [tag]}])
            listed = await client.list(tag=tag)
            assert many[0].id in {j.id for j in listed}
            assert [j.id async for j in client.iter_jobs(tag=tag, limit=1)] == [many[0].id]
            array = await client.submit(command="true", array="0-1", hold=True)
            tasks = await client.list(array=array.id)
            assert [j.array_task_id for j in tasks] == [1, 0]
            for task in tasks:
                await client.cancel(task.id)
            assert (await client.usage("user"))["group_by"] == "user"
            assert (await client.clusters())[0]["name"]

    asyncio.run(scenario())
