"""The REST transport without Slurm: slurmrestd's answers (real ones, recorded
from slurmrestd 22.05.8, openapi v0.0.38, in tests/fixtures/slurm/rest-*.json)
handed to it by an in-process HTTP transport, read into jobgate's terms and
errors; its job descriptions; its token sources (real processes)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobgate.backends.slurm import commands
from jobgate.backends.slurm.parsing import Tag
from jobgate.backends.slurm.rest import (
    RestTransport,
    job_description,
    partitions_from,
    sbatch_directives,
    usage_from,
)
from jobgate.backends.slurm.rest_tokens import (
    CommandToken,
    FileToken,
    StaticToken,
    jwt_claims,
    read_token,
)
from jobgate.backends.slurm.transport import (
    AccountingUnavailable,
    SlurmRefused,
    SlurmUnreachable,
)
from jobgate.backends.slurm.wrapper import RunDir, batch_script
from jobgate.config import ClusterConfig
from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import ConflictError, UnsupportedError, VerbNotSupportedError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def make_jwt(**claims: Any) -> str:
    """A token shaped like Slurm's (HS256 header, claims, a signature nobody checks here)."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class Recorded:
    """slurmrestd answering with recorded bodies, one per request, in order."""

    def __init__(self, *answers: tuple[int, str]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0)
        kind = "application/json" if body.lstrip().startswith("{") else "text/plain"
        return httpx.Response(status, text=body, headers={"content-type": kind})


def transport(*answers: tuple[int, str], tokens: Any = None) -> tuple[RestTransport, Recorded]:
    recorded = Recorded(*answers)
    rest = RestTransport("http://slurm:6820", tokens or StaticToken(make_jwt(sun="slurmtest")),
                         user="slurmtest", http=httpx.MockTransport(recorded), env={})
    return rest, recorded


class Renewable:
    """A token source that can always fetch another token (as a command can)."""

    def __init__(self) -> None:
        self.renewed = 0

    def token(self) -> str:
        return make_jwt(sun="slurmtest", n=self.renewed)

    def renew(self) -> bool:
        self.renewed += 1
        return True


# -- reads -----------------------------------------------------------------------


def test_jobs_are_read_like_squeue_and_filtered_by_their_tag() -> None:
    rest, recorded = transport((200, fixture("rest-jobs-v0.0.38.json")))
    [job] = rest.queue("jobgate:gw1:")
    assert (job.native_id, job.tag, job.state, job.name) == \
        ("93", Tag("gw1", 7, 0), JobState.RUNNING, "tagged")
    assert recorded.requests[0].url.path == "/slurm/v0.0.38/jobs"
    assert recorded.requests[0].headers["X-SLURM-USER-NAME"] == "slurmtest"
    assert jwt_claims(recorded.requests[0].headers["X-SLURM-USER-TOKEN"])["sun"] == "slurmtest"


def test_every_job_of_the_queue_when_no_prefix() -> None:
    rest, _ = transport((200, fixture("rest-jobs-v0.0.38.json")))
    jobs = {job.native_id: job for job in rest.queue()}
    assert set(jobs) == {"93", "45", "46"}
    assert (jobs["46"].state, jobs["46"].exit_code) == (JobState.FAILED, 3)  # raw 768


def test_partitions_have_the_limits_scontrol_gives() -> None:
    found = {p.name: p for p in partitions_from(json.loads(fixture(
        "rest-partitions-v0.0.38.json")))}
    debug, long = found["debug"], found["long"]
    assert (debug.default, debug.up, debug.max_time, debug.default_time) == \
        (True, True, 3600, 600)
    assert (long.default, long.max_time, long.default_time) == (False, 7 * 86400, 3600)
    assert debug.total_cpus == debug.max_cpus_per_job == 2
    assert debug.max_memory_per_job is None and debug.priority_tier == 1


def test_nodes_are_read_like_sinfo() -> None:
    rest, _ = transport((200, fixture("rest-nodes-v0.0.38.json")))
    [node] = rest.nodes()
    assert node["name"] == "vm" and node["cpus"] == 2 and node["memory"] > 0
    assert node["partitions"] == ["debug", "long"] and node["gpus"] == 0


def test_ended_jobs_come_from_slurmdb_with_the_window_asked() -> None:
    rest, recorded = transport((200, fixture("rest-slurmdb-jobs-v0.0.38.json")))
    jobs = {job.native_id: job for job in rest.ended_since(300, ["1", "2", "18"])}
    query = recorded.requests[0].url.params
    assert recorded.requests[0].url.path == "/slurmdb/v0.0.38/jobs"
    assert (query["start_time"], query["end_time"], query["step"]) == \
        ("now-300", "now", "1,2,18")
    assert query["state"] == commands.FINAL_STATE_CODES
    assert (jobs["1"].state, jobs["1"].exit_code) == (JobState.COMPLETED, 0)
    # 22.05 reports a non-zero exit as SUCCESS/0: unknown beats wrong.
    assert (jobs["2"].state, jobs["2"].exit_code) == (JobState.FAILED, None)
    assert (jobs["18"].state, jobs["18"].exit_code_signal) == (JobState.OUT_OF_MEMORY, None)


def test_nothing_ended_is_no_error() -> None:
    rest, _ = transport((200, fixture("rest-slurmdb-nothing-found-v0.0.38.json")))
    assert rest.ended_since(60, ["999999"]) == []


def test_a_slurmrestd_without_the_slurmdb_api_has_no_accounting() -> None:
    missing = "Unable find requested URL. Please view /openapi/v3 for API reference."
    rest, _ = transport((404, missing), (404, missing))
    with pytest.raises(AccountingUnavailable):
        rest.ended_since(60)
    with pytest.raises(AccountingUnavailable):
        rest.usage("93", running=False)


def test_an_ended_jobs_usage_reads_like_sacct() -> None:
    record = json.loads(fixture("rest-slurmdb-job-v0.0.38.json"))["jobs"][0]
    job, batch = usage_from(record)["steps"]
    assert (job["step"], job["state"], job["max_rss"]) == ("93", "FAILED", "")
    assert (batch["step"], batch["state"]) == ("93.batch", "FAILED")
    assert job["elapsed"] == "00:00:02"
    assert job["total_cpu"] == batch["total_cpu"] != ""  # the job's is its steps' sum
    assert batch["max_rss"].endswith("K")


def test_a_running_jobs_usage_and_its_batch_script_are_not_there() -> None:
    rest, recorded = transport()
    with pytest.raises(VerbNotSupportedError, match="sstat"):
        rest.usage("93", running=True)
    with pytest.raises(VerbNotSupportedError, match="batch script"):
        rest.batch_script("93")
    assert recorded.requests == []


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "status", "call", "error", "words"), [
    ("rest-cancel-unknown-v0.0.38.json", 500, lambda r: r.cancel("999999"), ConflictError,
     "Invalid job id"),
    ("rest-update-finished-v0.0.38.json", 500, lambda r: r.control("uhold", "93"),
     ConflictError, "already finished"),
    ("rest-update-access-denied-v0.0.38.json", 500, lambda r: r.set_time_limit("93", None),
     SlurmRefused, "may only lower"),
    ("rest-submit-error-v0.0.38.json", 500, lambda r: r.submit("#!/bin/bash\n"),
     SlurmRefused, "script"),
    ("rest-submit-parse-error-v0.0.38.json", 400, lambda r: r.submit("#!/bin/bash\n"),
     SlurmRefused, "Unable to parse time"),
    ("rest-get-unknown-job-v0.0.38.json", 500, lambda r: r.signal("999999", "USR1"),
     ConflictError, "Invalid job id"),
])
def test_slurms_errors_are_classified(name: str, status: int, call: Callable[[Any], None],
                                      error: type[Exception], words: str) -> None:
    rest, _ = transport((status, fixture(name)))
    with pytest.raises(error, match=words):
        call(rest)


def test_a_held_submission_is_a_submission() -> None:
    rest, _ = transport((200, fixture("rest-submit-held-v0.0.38.json")))
    assert rest.submit("#!/bin/bash\ntrue\n") == "92"


def test_a_refused_token_is_fetched_again_once() -> None:
    tokens = Renewable()
    rest, recorded = transport((500, fixture("rest-bad-token-v0.0.38.json")),
                               (200, fixture("rest-jobs-v0.0.38.json")), tokens=tokens)
    assert len(rest.queue()) == 3
    assert tokens.renewed == 1
    sent = [r.headers["X-SLURM-USER-TOKEN"] for r in recorded.requests]
    assert sent[0] != sent[1]


def test_an_unspecified_failure_that_persists_counts_as_unreachable() -> None:
    # A refused token and a controller slurmrestd cannot reach answer alike.
    rest, recorded = transport((500, fixture("rest-bad-token-v0.0.38.json")),
                               (500, fixture("rest-bad-token-v0.0.38.json")),
                               tokens=Renewable())
    with pytest.raises(SlurmUnreachable, match="refused the token"):
        rest.queue()
    assert len(recorded.requests) == 2


def test_a_submission_is_never_sent_twice() -> None:
    tokens = Renewable()
    rest, recorded = transport((500, fixture("rest-bad-token-v0.0.38.json")), tokens=tokens)
    with pytest.raises(SlurmUnreachable):
        rest.submit("#!/bin/bash\ntrue\n")
    assert len(recorded.requests) == 1 and tokens.renewed == 1  # a fresh one next time


def test_missing_credentials_are_refused() -> None:
    rest, _ = transport((401, "Authentication failure"))
    with pytest.raises(SlurmRefused, match="check rest_user"):
        rest.partitions()


def test_a_slurmrestd_that_is_not_there_is_unreachable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rest = RestTransport(f"http://127.0.0.1:{port}", StaticToken(make_jwt(sun="x")),
                         user="x", env={})
    with pytest.raises(SlurmUnreachable, match="cannot reach"):
        rest.queue()
    rest.close()


def test_a_slurmrestd_that_does_not_answer_in_time_is_unreachable() -> None:
    with socket.socket() as server:  # accepts, never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        rest = RestTransport(f"http://127.0.0.1:{server.getsockname()[1]}",
                             StaticToken(make_jwt(sun="x")), user="x", timeout=0.3, env={})
        with pytest.raises(SlurmUnreachable, match="did not answer"):
            rest.nodes()
        rest.close()


def test_signalling_reads_the_jobs_state_first() -> None:
    ended = json.loads(fixture("rest-get-job-v0.0.38.json"))  # a running job
    ended["jobs"][0]["job_state"] = "COMPLETED"
    rest, recorded = transport((200, fixture("rest-get-job-v0.0.38.json")),
                               (200, '{"errors": []}'), (200, json.dumps(ended)))
    rest.signal("22", "SIGUSR1")
    delete = recorded.requests[1]
    assert (delete.method, delete.url.path, delete.url.params["signal"]) == \
        ("DELETE", "/slurm/v0.0.38/job/22", "USR1")
    # slurmrestd would answer "done" for a job that has ended: it is not asked.
    with pytest.raises(ConflictError, match="only a running job"):
        rest.signal("22", "USR1")
    assert len(recorded.requests) == 3


def test_holds_and_verbs_slurmrestd_lacks() -> None:
    rest, recorded = transport((200, '{"errors": []}'), (200, '{"errors": []}'))
    rest.control("uhold", "27")
    rest.control("release", "27")
    assert [json.loads(r.content) for r in recorded.requests] == [{"hold": True},
                                                                  {"hold": False}]
    with pytest.raises(UnsupportedError, match="admin hold"):
        rest.control("hold", "27")
    for verb in ("suspend", "resume", "requeue", "requeuehold"):
        with pytest.raises(VerbNotSupportedError):
            rest.control(verb, "27")
    assert rest.missing_verbs == {"suspend", "resume"}


def test_a_new_time_limit_is_sent_in_minutes() -> None:
    rest, recorded = transport((200, '{"errors": []}'), (200, '{"errors": []}'))
    rest.set_time_limit("27", 61)
    rest.set_time_limit("27", None)
    assert [json.loads(r.content) for r in recorded.requests] == [
        {"time_limit": "2"}, {"time_limit": "UNLIMITED"}]


# -- submissions -----------------------------------------------------------------


def record(spec: JobSpec | None = None, **fields: Any) -> JobRecord:
    spec = spec or JobSpec.parse({"command": "true"})
    values: dict[str, Any] = dict(
        id=7, name="sim", state=JobState.PENDING, state_reason=None, held=False,
        user_name="ann", cluster="hpc", partition="debug", account="proj", num_nodes=1,
        ntasks=4, cpus_per_task=2, memory=2048, memory_per_cpu=None, gpus=1,
        time_limit=90, priority=0, tags=[], comment=None, working_directory="/w",
        standard_output="/w/100%/out", standard_error="/w/err-7",
        submit_time=datetime.now(UTC), start_time=None, end_time=None, exit_code=None,
        exit_code_signal=None, requeue_count=0, native_id=None, spec=spec, **fields,
    )
    return JobRecord.model_validate(values)


def generated_script(job: JobRecord) -> str:
    options = commands.sbatch_options(job, Tag("gw1", job.id, job.requeue_count))
    return batch_script(options, RunDir(Path("/r/7.0")), ["/bin/bash", "/r/7.0/script"],
                        script="#SBATCH --constraint=not-an-option-here\ntrue",
                        env={"A": "1"})


def test_the_sbatch_options_become_the_job_description() -> None:
    script = generated_script(record())
    job = job_description(script, {"PATH": "/usr/bin:/bin"})
    assert {k: v for k, v in job.items() if k != "environment"} == {
        "name": "sim", "comment": "jobgate:gw1:7.0", "current_working_directory": "/w",
        "standard_output": "/w/100%%/out", "standard_error": "/w/err-7",
        "open_mode": "truncate", "partition": "debug", "nodes": "1", "tasks": "4",
        "cpus_per_task": "2", "account": "proj", "memory_per_node": "2048M", "gpus": "1",
        "time_limit": "00:02:00",
    }
    # What sbatch would have put in the environment from its options.
    assert job["environment"]["PATH"] == "/usr/bin:/bin"
    assert job["environment"]["SLURM_CPUS_PER_TASK"] == "2"
    assert job["environment"]["SLURM_SUBMIT_DIR"] == "/w"


def test_mail_qos_requeue_and_signal_reach_the_job_description() -> None:
    spec = JobSpec.parse({"command": "true", "mail_type": "END", "mail_user": "ann@x.org",
                          "qos": "long", "requeue": False, "signal": "USR1@30"})
    job = job_description(generated_script(record(spec=spec)), {})
    # slurmrestd takes a signal by number only.
    assert (job["mail_type"], job["mail_user"], job["qos"], job["requeue"], job["signal"]) == (
        "END", "ann@x.org", "long", False, f"{int(signal.SIGUSR1)}@30")
    spec = JobSpec.parse({"command": "true", "requeue": True, "exclusive": True,
                          "constraint": "gpu", "reservation": "maint"})
    job = job_description(generated_script(record(spec=spec)), {})
    assert (job["requeue"], job["exclusive"], job["constraints"], job["reservation"]) == (
        True, "true", "gpu", "maint")


def test_only_the_directives_at_the_top_are_read() -> None:
    script = "#!/bin/bash\n#SBATCH --job-name=a\n\n# note\necho\n#SBATCH --partition=b\n"
    assert sbatch_directives(script) == [("--job-name", "a")]


def test_an_option_slurmrestd_cannot_take_is_refused() -> None:
    with pytest.raises(SlurmRefused, match="--nodelist"):
        job_description("#!/bin/bash\n#SBATCH --nodelist=n1\n", {})
    with pytest.raises(SlurmRefused, match="--export=NONE"):
        job_description("#!/bin/bash\n#SBATCH --export=NONE\n", {})


def test_a_submission_posts_the_script_and_its_description() -> None:
    script = generated_script(record())
    rest, recorded = transport((200, '{"errors": [], "job_id": 27, "step_id": "BATCH"}'))
    rest.base_env = {"PATH": "/opt/bin:/usr/bin", "HOME": "/root", "SECRET": "x",
                     "LC_ALL": "C.UTF-8"}
    assert rest.submit(script) == "27"
    sent = json.loads(recorded.requests[0].content)
    assert sent["script"] == script
    env = sent["job"]["environment"]
    # The gateway's PATH and locale; the user's own names, never root's home or secrets.
    assert (env["PATH"], env["LC_ALL"], env["USER"]) == ("/opt/bin:/usr/bin", "C.UTF-8",
                                                         "slurmtest")
    assert "SECRET" not in env and env.get("HOME") != "/root"


# -- tokens ----------------------------------------------------------------------


def test_scontrol_tokens_answer_is_read() -> None:
    token = make_jwt(sun="ann", exp=2_000_000_000)
    assert read_token(f"SLURM_JWT={token}\n", "x") == token
    assert read_token(f"  {token}  ", "x") == token
    assert jwt_claims(token) == {"sun": "ann", "exp": 2_000_000_000}
    assert jwt_claims("not a token") == {}


def token_script(tmp_path: Path, lifespan: int) -> tuple[str, Path]:
    """A command printing a new token each run (its run count in the claims)."""
    count = tmp_path / "runs"
    script = tmp_path / "token.sh"
    header = base64.urlsafe_b64encode(b'{"alg":"HS256"}').decode().rstrip("=")
    script.write_text(
        "#!/bin/bash\n"
        f"n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}\n"
        "now=$(date +%s)\n"
        f"claims=$(printf '{{\"sun\":\"ann\",\"iat\":%d,\"exp\":%d,\"n\":%d}}' "
        f"$now $((now + {lifespan})) $n | base64 -w0 | tr '+/' '-_' | tr -d '=')\n"
        f"echo \"SLURM_JWT={header}.$claims.sig\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), count


def test_a_command_token_is_fetched_again_before_it_expires(tmp_path: Path) -> None:
    command, count = token_script(tmp_path, lifespan=600)
    now = [datetime.now(UTC).timestamp()]
    tokens = CommandToken(command, clock=lambda: now[0])
    first = tokens.token()
    assert tokens.token() == first and count.read_text().strip() == "1"
    now[0] += 600 - 100  # less than a fifth of its life left: a new one
    second = tokens.token()
    assert second != first and jwt_claims(second)["n"] == 2
    now[0] = datetime.now(UTC).timestamp()  # the new token's life starts now
    assert tokens.renew() and jwt_claims(tokens.token())["n"] == 3  # refused: a new one
    assert tokens.runs == 3


def test_a_failing_token_command_says_why(tmp_path: Path) -> None:
    tokens = CommandToken("sh -c 'echo scontrol: error: Invalid user >&2; exit 1'")
    with pytest.raises(SlurmRefused, match="Invalid user"):
        tokens.token()


def test_a_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(make_jwt(sun="ann", n=1) + "\n")
    tokens = FileToken(str(path))
    assert jwt_claims(tokens.token())["n"] == 1
    path.write_text(f"SLURM_JWT={make_jwt(sun='ann', n=22)}\n")
    os.utime(path, ns=(1, 1))  # the size changed too; the mtime alone would do
    assert jwt_claims(tokens.token())["n"] == 22
    assert not tokens.renew()  # the same file: nothing new


def test_an_expired_token_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    with pytest.raises(SlurmRefused, match="expired"):
        StaticToken(make_jwt(sun="ann", exp=1_000_000_000)).token()


# -- configuration ---------------------------------------------------------------


def test_a_rest_cluster_needs_a_url_and_one_token_source() -> None:
    rest = {"backend": "slurm", "transport": "rest"}
    with pytest.raises(ValueError, match="rest_url"):
        ClusterConfig.model_validate(rest | {"rest_token": "t"})
    with pytest.raises(ValueError, match="exactly one"):
        ClusterConfig.model_validate(rest | {"rest_url": "http://h:6820"})
    with pytest.raises(ValueError, match="exactly one"):
        ClusterConfig.model_validate(rest | {"rest_url": "http://h:6820", "rest_token": "t",
                                             "rest_token_file": "/f"})
    config = ClusterConfig.model_validate(rest | {"rest_url": "http://h:6820",
                                                  "rest_token_command": "scontrol token"})
    assert config.rest_token_command == "scontrol token"
