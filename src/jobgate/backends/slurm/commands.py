"""The Slurm command lines jobgate runs: pure functions building argv.

Nothing here runs a process: a `Runner` (see transport.py) is handed the argv,
psij-python style, so every builder is tested without Slurm.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobgate.backends.slurm.parsing import SACCT_FIELDS, SQUEUE_TEXT_FIELDS, SSTAT_FIELDS, Tag
from jobgate.domain.job import JobRecord

# Finished states sacct is asked about (short codes work from 17.11 on).
FINAL_STATE_CODES = "BF,CA,CD,DL,F,NF,OOM,PR,TO"


def format_time_limit(seconds: int) -> str:
    """sbatch's --time for a limit in seconds: Slurm counts whole minutes, so a
    limit is rounded up (a job may run at least as long as asked)."""
    minutes = -(-seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00" if days else f"{hours:02d}:{mins:02d}:00"


def escape_pattern(path: str) -> str:
    """A path sbatch must take literally: its file patterns read `%`."""
    return path.replace("%", "%%")


def _safe(value: str, what: str) -> str:
    """A value for one #SBATCH line: a line break would end the directive and
    start a line of the script."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"{what} contains a line break")
    return value


def sbatch_options(job: JobRecord, tag: Tag) -> list[str]:
    """The job's request as sbatch options (for `#SBATCH` lines).

    Arrays, dependencies, begin times, holds and priorities stay with the
    gateway, which hands Slurm each task once it may start; Slurm sees single jobs.
    """
    options = [
        f"--job-name={_safe(job.name, 'name')}",
        f"--comment={tag}",
        f"--chdir={_safe(job.working_directory, 'working_directory')}",
        f"--output={escape_pattern(_safe(job.standard_output, 'stdout'))}",
        f"--error={escape_pattern(_safe(job.standard_error, 'stderr'))}",
        # A requeued run keeps what earlier runs wrote, as with the local cluster.
        f"--open-mode={'append' if job.requeue_count else job.spec.open_mode or 'truncate'}",
        f"--partition={_safe(job.partition, 'partition')}",
        f"--nodes={job.num_nodes}",
        f"--ntasks={job.ntasks}",
        f"--cpus-per-task={job.cpus_per_task}",
        # The wrapper passes the gateway's environment on; sbatch's is curated.
        "--export=ALL",
    ]
    if job.account:
        options.append(f"--account={_safe(job.account, 'account')}")
    if job.memory is not None:
        options.append(f"--mem={job.memory}M")
    elif job.memory_per_cpu is not None:
        options.append(f"--mem-per-cpu={job.memory_per_cpu}M")
    if job.gpus:
        options.append(f"--gpus={job.gpus}")
    if job.time_limit is not None:
        options.append(f"--time={format_time_limit(job.time_limit)}")
    spec = job.spec
    # The spec's own Slurm options, as they are (each validated by JobSpec).
    for option, field in _PASSED_OPTIONS:
        value = getattr(spec, field)
        if value is not None:
            options.append(f"{option}={_safe(value, field)}")
    if spec.exclusive:
        options.append("--exclusive")
    if spec.requeue is not None:
        options.append("--requeue" if spec.requeue else "--no-requeue")
    return options


_PASSED_OPTIONS = (("--qos", "qos"), ("--mail-type", "mail_type"), ("--mail-user", "mail_user"),
                   ("--constraint", "constraint"), ("--reservation", "reservation"),
                   ("--signal", "signal"))


# -- argv ------------------------------------------------------------------------


def sbatch() -> list[str]:
    """Submit the batch script given on the standard input; prints `id[;cluster]`."""
    return ["sbatch", "--parsable"]


def squeue() -> list[str]:
    """Every job slurmctld holds (22.05 ignores -j/-t/-u with --json)."""
    return ["squeue", "--json"]


def squeue_text(separator: str, user: str | None = None) -> list[str]:
    """Every job slurmctld holds, ended ones too (-t all), as text: the fields
    of SQUEUE_TEXT_FIELDS, each followed by `separator` (a few random letters
    and digits between two `~`: squeue takes any text there but a comma), whole
    (no width given, nothing is cut). Epoch times with SLURM_TIME_FORMAT=%s.

    With `user`, that user's jobs alone: one user is the filter slurmctld
    applies itself (REQUEST_JOB_USER_INFO), so neither it nor squeue goes
    through the other users' jobs. A call cost 77 ms of CPU with 7,000 jobs
    held, 5 ms filtered to a user with none."""
    if "," in separator or not separator.startswith("~"):
        raise ValueError(f"not a separator squeue can print: {separator!r}")
    return ["squeue", "-h", "-t", "all", *(["-u", user] if user else []), "-O",
            ",".join(f"{name}:{separator}" for name in SQUEUE_TEXT_FIELDS)]


def sacct_since(seconds_ago: int, native_ids: Sequence[str] = ()) -> list[str]:
    """Jobs that ended in the last `seconds_ago` seconds (relative, so no time
    zone is involved), one line each (text: 22.05's --json garbles exit codes),
    epoch times when run with SLURM_TIME_FORMAT=%s."""
    argv = ["sacct", "-n", "-P", "-X", "-o", ",".join(SACCT_FIELDS),
            "-S", f"now-{max(1, seconds_ago)}", "-E", "now", "-s", FINAL_STATE_CODES]
    if native_ids:
        argv += ["-j", ",".join(native_ids)]
    return argv


def sacct_jobs(native_ids: Sequence[str]) -> list[str]:
    """Given jobs, whatever their state (stats of ended jobs)."""
    return ["sacct", "-n", "-P", "-X", "-o", ",".join(SACCT_FIELDS), "-j", ",".join(native_ids)]


def sacct_usage(native_id: str) -> list[str]:
    """An ended job's resource use, per step."""
    return ["sacct", "-n", "-P", "-o", "JobID,State,Elapsed,TotalCPU,UserCPU,SystemCPU,MaxRSS",
            "-j", native_id]


def sstat(native_id: str) -> list[str]:
    """A running job's batch step usage."""
    return ["sstat", "-n", "-P", "-a", "-o", ",".join(SSTAT_FIELDS), "-j", f"{native_id}.batch"]


def scancel(native_id: str) -> list[str]:
    return ["scancel", native_id]


def send_signal(native_id: str, signal_name: str) -> list[str]:
    """A signal for the batch script (plain scancel --signal reaches only job
    steps, which a batch job may not have); jobgate's wrapper passes it on to the
    script's process group, so every process of the job gets it once."""
    return ["scancel", "--batch", f"--signal={signal_name}", native_id]


def scontrol(verb: str, native_id: str) -> list[str]:
    """hold, uhold, release, suspend, resume, requeue, requeuehold."""
    if verb not in ("hold", "uhold", "release", "suspend", "resume", "requeue", "requeuehold"):
        raise ValueError(f"not an scontrol job verb: {verb}")
    return ["scontrol", verb, native_id]


def update(native_id: str, **fields: str) -> list[str]:
    """`scontrol update JobId=N Key=Value...` (TimeLimit, Name, Comment, ...)."""
    return ["scontrol", "update", f"JobId={native_id}",
            *(f"{key}={_safe(value, key)}" for key, value in fields.items())]


def update_time_limit(native_id: str, seconds: int | None) -> list[str]:
    return update(native_id, TimeLimit="UNLIMITED" if seconds is None
                  else format_time_limit(seconds))


def batch_script(native_id: str) -> list[str]:
    """The script Slurm runs (for jobgate's jobs: the generated wrapper)."""
    return ["scontrol", "write", "batch_script", native_id, "-"]


def partitions() -> list[str]:
    return ["scontrol", "show", "partition", "-o"]


def sinfo() -> list[str]:
    return ["sinfo", "--json"]
