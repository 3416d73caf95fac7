"""The SDK against a real gateway: submit, wait, output, list, cancel and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import jobgate
from jobgate import (
    AuthenticationError,
    Client,
    ConflictError,
    InvalidSpecError,
    JobgateError,
    JobState,
    NotFoundError,
    UnreachableError,
    WaitTimeout,
)
from server_process import LiveServer, free_port

WAIT = 60  # generous: a loaded machine must not fail the suite


def test_submit_script_completes_with_its_output(client: Client, tmp_path: Path) -> None:
    job = client.submit("#!/bin/bash\necho hello\n", working_directory=str(tmp_path))

    assert job.state in (JobState.PENDING, JobState.RUNNING, JobState.COMPLETED)
    assert job.wait(timeout=WAIT) is JobState.COMPLETED
    assert job.done and job.exit_code == 0
    assert job.read_stdout() == "hello\n"
    assert job.read_stdout(offset=2) == "llo\n"
    assert job.read_stderr() == ""
    assert job.end_time is not None and job.end_time.tzinfo is not None
    assert (tmp_path / f"jobgate-{job.id}.out").read_text() == "hello\n"
    events = job.events()
    assert events[0]["to_state"] == "PENDING"
    assert events[-1]["to_state"] == "COMPLETED"
    assert client.get(job.id).to_dict()["state"] == "COMPLETED"


def test_command_with_slurm_strings_is_parsed_by_the_gateway(client: Client) -> None:
    job = client.submit(command="echo $((6 * 7))", time_limit="1:00:00", memory="1G",
                        name="answer")

    assert (job.name, job.time_limit, job.memory) == ("answer", 3600, 1024)
    assert job.wait(timeout=WAIT) is JobState.COMPLETED
    assert job.read_stdout() == "42\n"


def test_failing_script_is_failed_with_its_exit_code(client: Client) -> None:
    job = client.submit("#!/bin/bash\necho broken >&2\nexit 3\n")

    assert job.wait(timeout=WAIT) is JobState.FAILED
    assert job.exit_code == 3
    assert job.read_stderr() == "broken\n"


def test_cancel_a_sleeping_job(client: Client) -> None:
    job = client.submit(command="sleep 60")

    assert job.cancel() is job
    assert job.wait(timeout=WAIT) is JobState.CANCELLED
    with pytest.raises(ConflictError, match="already ended"):
        job.cancel()


def test_wait_times_out_with_a_jobgate_error(client: Client) -> None:
    job = client.submit(command="sleep 60")
    try:
        with pytest.raises(WaitTimeout, match=f"job {job.id} is still") as caught:
            job.wait(timeout=0.3)
        assert isinstance(caught.value, TimeoutError)
        assert isinstance(caught.value, JobgateError)
    finally:
        client.cancel(job.id)


def test_an_explicit_field_wins_over_the_sbatch_directive(client: Client) -> None:
    script = "#!/bin/bash\n#SBATCH -J from-script\n#SBATCH --time=10:00\ntrue\n"

    assert client.submit(script).name == "from-script"
    job = client.submit(script, name="from-call")
    assert (job.name, job.time_limit) == ("from-call", 600)


def test_list_by_tag_follows_the_cursors(client: Client, tag: str) -> None:
    ids = [client.submit(command="true", tags=[tag, "extra"]).id for _ in range(3)]
    client.submit(command="true", tags=["other"])

    newest_first = sorted(ids, reverse=True)
    assert [job.id for job in client.list(tag=tag)] == newest_first
    assert [job.id for job in client.list(tag=tag, limit=2)] == newest_first[:2]
    assert [job.id for job in client.iter_jobs(tag=tag, page_size=1)] == newest_first
    for job in client.list(tag=tag):
        job.wait(timeout=WAIT)
    assert {j.id for j in client.list(tag=tag, state=["COMPLETED", JobState.FAILED])} == set(ids)
    assert client.list(tag=tag, state=JobState.RUNNING) == []


def test_bad_values_raise_invalid_spec_with_the_servers_message(client: Client) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        client.submit(command="true", time_limit="soon")
    assert caught.value.field == "time_limit"
    assert caught.value.message.startswith("time_limit: not a time")
    assert str(caught.value) == caught.value.message

    with pytest.raises(InvalidSpecError, match="bogus"):
        client.submit(command="true", bogus=1)
    with pytest.raises(InvalidSpecError, match="state"):
        client.list(state="NOT_A_STATE")


def test_unknown_job_is_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError, match="no job 987654"):
        client.get(987654)


def test_wrong_or_missing_token_is_an_authentication_error(server: LiveServer) -> None:
    with Client(server.url, "not-the-token") as client, pytest.raises(
        AuthenticationError, match="invalid token"
    ):
        client.list()
    with Client(server.url, "") as client, pytest.raises(AuthenticationError, match="missing"):
        client.get(1)


def test_defaults_come_from_the_environment(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBGATE_URL", server.url)
    monkeypatch.delenv("JOBGATE_TOKEN", raising=False)
    monkeypatch.setenv("JOBGATE_HOME", str(server.home))
    with Client() as client:
        assert client.url == server.url
        assert client.health()
        client.list(limit=1)  # the token was read from $JOBGATE_HOME/admin.token

    monkeypatch.setenv("JOBGATE_TOKEN", "from-env")
    with Client() as client, pytest.raises(AuthenticationError):
        client.list(limit=1)


def test_unreachable_gateway_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, "t", timeout=5) as client, pytest.raises(UnreachableError) as caught:
        client.get(1)
    assert url in caught.value.message
    assert isinstance(caught.value, ConnectionError)


def test_public_names_and_a_light_import() -> None:
    for name in jobgate.__all__:
        assert hasattr(jobgate, name), name
    assert issubclass(jobgate.UnsupportedError, jobgate.JobgateError)
    heavy = subprocess.run(
        [sys.executable, "-c",
         "import sys, jobgate; print(sorted({m.split('.')[0] for m in sys.modules}"
         " & {'fastapi', 'sqlalchemy', 'uvicorn', 'starlette', 'alembic'}))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert heavy == "[]"


def test_submit_with_an_idempotency_key_makes_one_job(client: Client, tag: str) -> None:
    first = client.submit(command="true", tags=[tag], idempotency_key=f"sdk-{tag}")
    again = client.submit(command="true", tags=[tag], idempotency_key=f"sdk-{tag}")
    assert again.id == first.id
    assert [job.id for job in client.list(tag=tag)] == [first.id]
    assert first.wait(timeout=30) is JobState.COMPLETED


def test_follow_output_streams_until_the_job_ends(client: Client) -> None:
    job = client.submit(command="for i in 1 2 3; do echo $i; sleep 0.2; done")
    assert b"".join(client.follow_output(job.id)) == b"1\n2\n3\n"
    assert client.get(job.id).done
    with pytest.raises(NotFoundError):
        list(client.follow_output(999999))
