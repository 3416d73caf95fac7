"""AsyncClient's jobs: the sync Job's verbs with the same names, awaitable."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jobgate import AsyncClient, JobState
from jobgate.client.async_job import AsyncJob
from server_process import LiveServer

WAIT = 60


def test_awaitable_verbs_on_a_job(server: LiveServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, server.token) as client:
            script = "trap 'echo usr1' USR1; echo started; for i in $(seq 600); do " \
                     "sleep 0.1; done"
            job = await client.submit(command=script, hold=True, name="aj",
                                      working_directory=str(tmp_path))
            assert isinstance(job, AsyncJob) and job.held
            assert await job.modify(name="renamed") is job and job.name == "renamed"
            assert "seq 600" in await job.get_batch_script()
            await job.release()
            assert await job.wait(until="RUNNING", timeout=WAIT) is JobState.RUNNING
            assert job.state is JobState.RUNNING
            while "started" not in await job.read_stdout():  # the trap is set
                await asyncio.sleep(0.1)
            await job.notify("hello")
            await job.send_signal("USR1")
            assert (await job.suspend()).state is JobState.SUSPENDED
            assert (await job.unsuspend()).state is JobState.RUNNING
            assert "started\n" in [line async for line in job.stdout()]
            assert (await job.load_stats())["id"] == job.id
            assert (await job.events())[0]["to_state"] == "PENDING"
            names = {entry["path"] for entry in await job.files()}
            assert f"jobgate-{job.id}.out" in names
            copied = await job.download(f"jobgate-{job.id}.out", tmp_path / "copy.out")
            assert copied.read_text().startswith("started\n")
            await job.requeue(hold=True)
            assert await job.wait(until="PENDING", timeout=WAIT) is JobState.PENDING
            await job.cancel()
            assert await job.wait(timeout=WAIT) is JobState.CANCELLED
            assert (await job.reload()).state is JobState.CANCELLED
            assert isinstance(await job.read_stderr(), str)
            await job.delete()

            echo = await client.submit(command="printf 'a\\nb'")
            assert [line async for line in echo.stdout(follow=True)] == ["a\n", "b"]
            assert await echo.read_stdout() == "a\nb"
            await echo.update()
            assert echo.state is JobState.COMPLETED

    asyncio.run(scenario())
