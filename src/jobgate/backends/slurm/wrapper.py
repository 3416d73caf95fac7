"""The batch script jobgate hands to sbatch, and the files its wrapper leaves.

The batch script is whole in itself: `#SBATCH` lines, the wrapper, and as data
after it (a here-document on file descriptor 3) the job's own variables and the
user's script. sbatch reads it on its standard input. The gateway writes no
file for a run but its directory: a file made on a shared file system costs a
fork's worth of CPU on the gateway here and several milliseconds over NFS,
while the wrapper does that work on the node that runs the job.

Each run of a job has a directory on the file system shared with the compute
nodes, `<job_dir>/<gateway>/runs/<job id>.<run>`, where the wrapper writes:

- `script`: the user's script, which it then runs (a command is run with
  `bash -c`, as on the local cluster: no file);
- `start` and `exit`: the epoch of the start, then the raw wait status, the
  epoch of the end and the CPU seconds used (user, system). They tell the
  outcome when Slurm no longer knows the job (no accounting, or gone from its
  memory).

The data on descriptor 3: one line a variable, `KEY=VALUE` in hexadecimal (any
name, any value: newlines too), an empty line, then the script as it is (none
for a command). The
here-document's end marker is chosen to appear in no line of the script.

The wrapper is a few lines of Perl (in Debian's Essential set, and on nearly every
cluster node): unlike a shell it learns the child's raw wait status, so "killed by
SIGKILL" and "exit 137" stay apart, and it dies of the child's signal so that Slurm
sees what it would have seen without a wrapper. It loads no module (POSIX alone
cost each job 10 ms of CPU; the child that fails to exec has nothing buffered
to flush twice, so a plain exit does). Slurm signals only the batch
script's own process (the wrapper) short of SIGKILL, for a cancel as for
`scancel --batch --signal`: the wrapper passes each catchable signal on to the
job's process group (the script and what it started), then records the end.
Without Perl, a shell fallback (bash builtins, date, mv, rm) records the exit
code alone.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jobgate.backends.slurm.parsing import ExitStatus, decode_wait_status
from jobgate.domain.arrays import parse_array
from jobgate.domain.job import JobRecord

_PERL = r"""
use strict;
my $d = shift @ARGV;
sub put { my ($n, $t) = @_;
  if (open(my $f, ">", "$d/$n.tmp")) { print $f $t; close $f; rename("$d/$n.tmp", "$d/$n"); } }
unlink("$d/exit");
if (open(my $in, "<&=", 3)) {
  while (my $l = <$in>) { chomp $l; last if $l eq "";
    my ($k, $v) = split(/=/, pack("H*", $l), 2); $ENV{$k} = $v if length $k; }
  my $body = do { local $/; <$in> }; close $in;
  if (defined $body) { $body =~ s/\n\z//;
    if (open(my $f, ">", "$d/script")) { print $f $body; close $f; } } }
my @caught = qw(HUP INT QUIT USR1 USR2 ALRM TERM CONT);
my $pid = 0;
$SIG{$_} = sub { kill($_[0], -$pid) if $pid > 0 } for @caught;
put("start", time() . "\n");
$pid = fork();
if (defined $pid && $pid == 0) {
  setpgrp(0, 0); $SIG{$_} = "DEFAULT" for @caught;
  exec { $ARGV[0] } @ARGV;
  print STDERR "jobgate: cannot run $ARGV[0]: $!\n"; exit(127); }
my $s = 127 << 8;
if (defined $pid) { setpgrp($pid, $pid);
  while (1) { my $r = waitpid($pid, 0);
    if ($r == $pid) { $s = $?; last; } last if $r == -1 && !$!{EINTR}; } }
else { print STDERR "jobgate: cannot fork: $!\n"; }
my ($u, $y, $cu, $cy) = times();
put("exit", "$s " . time() . " $cu $cy\n");
my $sig = $s & 127;
if ($sig) { $SIG{$_} = "DEFAULT" for @caught; kill($sig, $$); }
exit($sig ? 128 + $sig : $s >> 8);
"""

_SHELL_FALLBACK = r"""
d=$1; shift
rm -f "$d/exit"
while IFS= read -r line <&3 && [ -n "$line" ]; do
  hex=""; for ((i = 0; i < ${#line}; i += 2)); do hex+="\\x${line:i:2}"; done
  printf -v kv '%b' "$hex"; export "$kv" 2>/dev/null
done
IFS= read -r -d '' body <&3; exec 3<&-
[ -z "$body" ] || printf '%s' "${body%$'\n'}" > "$d/script"
date +%s > "$d/start.tmp" && mv "$d/start.tmp" "$d/start"
"$@" & pid=$!
for s in HUP INT QUIT USR1 USR2 ALRM TERM CONT; do trap "kill -s $s $pid 2>/dev/null" $s; done
while :; do wait $pid; rc=$?; kill -0 $pid 2>/dev/null || break; done
echo "$((rc << 8)) $(date +%s)" > "$d/exit.tmp" && mv "$d/exit.tmp" "$d/exit"
exit $rc
"""


@dataclass(frozen=True)
class RunDir:
    """The files of one run of one job (see the module's docstring)."""

    path: Path

    @property
    def script(self) -> Path:
        return self.path / "script"

    @property
    def start_file(self) -> Path:
        return self.path / "start"

    @property
    def exit_file(self) -> Path:
        return self.path / "exit"

    def make(self) -> None:
        """Make the directory the wrapper writes into (the gateway writes nothing
        else for a run: the batch script carries the rest)."""
        self.path.mkdir(parents=True, exist_ok=True)

    def outcome(self) -> Ended | None:
        """What the wrapper recorded at the end, if it did."""
        try:
            raw, end, *cpu = self.exit_file.read_text().split()
            usage = {"cpu_user": float(cpu[0]), "cpu_system": float(cpu[1])} \
                if len(cpu) == 2 else {}
            return Ended(decode_wait_status(int(raw)), datetime.fromtimestamp(int(end), UTC),
                         usage)
        except (OSError, ValueError):
            return None

    def started_at(self) -> datetime | None:
        try:
            return datetime.fromtimestamp(int(self.start_file.read_text().strip()), UTC)
        except (OSError, ValueError):
            return None


@dataclass(frozen=True)
class Ended:
    status: ExitStatus
    end_time: datetime
    usage: dict[str, float]


def batch_script(options: list[str], run_dir: RunDir, argv: list[str], *,
                 script: str | None, env: dict[str, str]) -> str:
    """The script sbatch gets: the job's options as `#SBATCH` lines, then the
    wrapper, which writes `script` (if any) into `run_dir` and runs `argv` with
    `env` (see the module's docstring)."""
    directives = "".join(f"#SBATCH {option}\n" for option in options)
    args = " ".join(shlex.quote(a) for a in [str(run_dir.path), *argv])
    variables = "".join(f"{key}={value}".encode().hex() + "\n" for key, value in env.items())
    lines = set(script.split("\n")) if script is not None else set()
    marker = "JOBGATE_DATA"
    while marker in lines:  # a script that holds the marker: another one
        marker = f"JOBGATE_DATA_{secrets.token_hex(8)}"
    body = "" if script is None else f"{script}\n"  # the wrapper takes one \n off
    return (
        "#!/bin/bash\n"
        f"{directives}"
        "# jobgate: runs the job's script and records its end in the job's directory.\n"
        "{\n"
        f"set -- {args}\n"
        "if command -v perl >/dev/null 2>&1; then\n"
        f"  exec perl -e {shlex.quote(_PERL.strip())} -- \"$@\"\n"
        "fi\n"
        f"{_SHELL_FALLBACK.strip()}\n"
        f"}} 3<<'{marker}'\n"
        f"{variables}\n{body}{marker}\n"
    )


def job_environment(job: JobRecord) -> dict[str, str]:
    """The job's own variables, passed by the wrapper: the request's, each
    JOBGATE_* a local job gets, and the array variables of the gateway's array
    (Slurm sees each task as a job of its own). Slurm sets the other SLURM_*."""
    env = dict(job.spec.environment)
    jobgate = {
        "JOB_ID": str(job.id), "JOB_NAME": job.name, "SUBMIT_DIR": job.working_directory,
        "CLUSTER_NAME": job.cluster, "JOB_PARTITION": job.partition,
        "RESTART_COUNT": str(job.requeue_count),
    }
    if job.array_job_id is not None and job.array_task_id is not None and job.spec.array:
        tasks = parse_array(job.spec.array)
        array = {"ARRAY_JOB_ID": str(job.array_job_id), "ARRAY_TASK_ID": str(job.array_task_id),
                 "ARRAY_TASK_COUNT": str(tasks.count), "ARRAY_TASK_MIN": str(tasks.min),
                 "ARRAY_TASK_MAX": str(tasks.max)}
        if len(tasks.indices) > 1:
            steps = {b - a for a, b in zip(tasks.indices, tasks.indices[1:], strict=False)}
            array["ARRAY_TASK_STEP"] = str(steps.pop() if len(steps) == 1 else 1)
        jobgate |= array
        env |= {f"SLURM_{k}": v for k, v in array.items()}
    env |= {f"JOBGATE_{k}": v for k, v in jobgate.items()}
    # Slurm's is where sbatch ran (the gateway's directory); a user submitting
    # by hand would have run it in the job's.
    env["SLURM_SUBMIT_DIR"] = job.working_directory
    return env
