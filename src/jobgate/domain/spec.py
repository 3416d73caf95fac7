"""What a user asks for: the job specification and how `#SBATCH` lines fill it.

`JobSpec` accepts Slurm's strings where people type them (``"1:00:00"`` for a
time limit, ``"4G"`` for memory) and stores plain numbers: seconds and MiB.
Every bad value raises :class:`~jobgate.errors.InvalidSpecError` naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobgate.domain.parsing import (
    parse_duration,
    parse_memory,
    parse_sbatch_directives,
    parse_warn_signal,
)
from jobgate.domain.sbatch_names import from_sbatch_names
from jobgate.errors import InvalidSpecError

MAX_SCRIPT_BYTES = 1024 * 1024
# A command is one argument of `bash -c`: the kernel refuses a longer one (E2BIG).
MAX_COMMAND_BYTES = 128 * 1024 - 1
MAX_TAGS = 64
MAX_TAG_LENGTH = 128
MAX_ENV_ENTRIES = 4096
# sbatch --mail-type's values.
MAIL_TYPES = ("NONE", "BEGIN", "END", "FAIL", "REQUEUE", "ALL", "INVALID_DEPEND", "STAGE_OUT",
              "TIME_LIMIT", "TIME_LIMIT_90", "TIME_LIMIT_80", "TIME_LIMIT_50", "ARRAY_TASKS")


class JobSpec(BaseModel):
    """A batch job request. Unset fields are None; `resolve_spec` fills defaults."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    name: str | None = Field(None, max_length=256)
    script: str | None = Field(None, description="A batch script; `#SBATCH` lines are read.")
    command: str | None = Field(None, description="A shell command line, run with bash -c.")
    working_directory: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    cluster: str | None = None
    partition: str | None = None
    account: str | None = None
    # The project to charge (default: the user's only project).
    project: str | None = Field(None, min_length=1, max_length=128)
    nodes: int | None = Field(None, ge=1)
    ntasks: int | None = Field(None, ge=1)
    cpus_per_task: int | None = Field(None, ge=1)
    memory: int | None = Field(None, ge=0, description="MiB per node; accepts '4G' etc.")
    memory_per_cpu: int | None = Field(None, ge=0, description="MiB per CPU.")
    gpus: int | None = Field(None, ge=0)
    time_limit: int | None = Field(
        None, ge=0, description="Seconds; accepts Slurm time strings such as '1-00:00:00'."
    )
    begin: datetime | None = None
    deadline: datetime | None = None
    priority: int | None = None
    hold: bool = False
    tags: list[str] = Field(default_factory=list)
    array: str | None = None
    dependencies: str | None = None
    kill_on_invalid_dependency: bool = False
    stdout: str | None = Field(None, description=(
        "Output file pattern, as sbatch's: %j job id, %x name, %u user, %A/%a array job "
        "and task id; a width zero-pads (%3a)."))
    stderr: str | None = Field(None, description="Error file pattern, as stdout's.")
    open_mode: Literal["append", "truncate"] | None = Field(None, description=(
        "Whether a job's first run appends to its output files or empties them "
        "(truncate, the default); a requeued run always appends."))
    requeue: bool | None = Field(None, description=(
        "false: the job may not be requeued (sbatch --no-requeue)."))
    signal: str | None = Field(None, description=(
        "sbatch --signal: [B:]SIG[@SECONDS], the signal sent SECONDS (60) before the time "
        "limit; B: to the batch script (what it started too), else to job steps alone "
        "(the local cluster has none)."))
    qos: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                            description="Slurm's quality of service; recorded on the local "
                                        "cluster, which has none.")
    mail_type: str | None = Field(None, description=(
        "When Slurm mails: a comma list of " + ", ".join(MAIL_TYPES) + "; the local "
        "cluster sends no mail (use a webhook)."))
    mail_user: str | None = Field(None, pattern=r"^[^\s,]{1,256}$",
                                  description="Whom Slurm mails (default: the job's user).")
    exclusive: bool = Field(False, description="The job's nodes run no other job "
                                               "(Slurm clusters).")
    constraint: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-&|,*\[\]:()!]+$",
                                   max_length=1024,
                                   description="Node features the job needs (Slurm clusters).")
    reservation: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-,]+$", max_length=256,
                                    description="A Slurm reservation to run in (Slurm clusters).")
    comment: str | None = Field(None, max_length=4096)
    additional_data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _sbatch_names(cls, data: Any) -> Any:
        # sbatch's option names (job_name, mem, time, ...) as the fields they set.
        return from_sbatch_names(data) if isinstance(data, dict) else data

    @field_validator("time_limit", mode="before")
    @classmethod
    def _time_limit(cls, value: Any) -> Any:
        # Zero is no limit, as sbatch --time=0 asks (the local cluster ended such
        # a job at once, Slurm let it run).
        return None if value is None else parse_duration(value, "time_limit") or None

    @field_validator("memory", "memory_per_cpu", mode="before")
    @classmethod
    def _memory(cls, value: Any, info: Any) -> Any:
        return None if value is None else parse_memory(value, info.field_name)

    @field_validator("mail_type")
    @classmethod
    def _mail_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        types = [item.strip().upper() for item in value.split(",")]
        for item in types:
            if item not in MAIL_TYPES:
                raise InvalidSpecError("mail_type", value,
                                       f"{item or 'an empty item'} is not one of "
                                       f"{', '.join(MAIL_TYPES)}")
        return ",".join(types)

    @field_validator("signal")
    @classmethod
    def _signal(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_warn_signal(value))

    @field_validator("begin", "deadline")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # Naive times are taken as UTC, the API's one time zone.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("script")
    @classmethod
    def _script_size(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) > MAX_SCRIPT_BYTES:
            raise InvalidSpecError("script", f"{len(value.encode())} bytes",
                                   f"larger than {MAX_SCRIPT_BYTES} bytes")
        return value

    @field_validator("command")
    @classmethod
    def _command_size(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) > MAX_COMMAND_BYTES:
            raise InvalidSpecError("command", f"{len(value.encode())} bytes",
                                   f"longer than {MAX_COMMAND_BYTES} bytes, the most one "
                                   "argument of bash -c may hold: send it as a script")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_TAGS:
            raise InvalidSpecError("tags", len(value), f"more than {MAX_TAGS} tags")
        for tag in value:
            if not tag or len(tag) > MAX_TAG_LENGTH:
                raise InvalidSpecError("tags", tag, f"a tag must be 1 to {MAX_TAG_LENGTH} chars")
        return list(dict.fromkeys(value))

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_ENV_ENTRIES:
            raise InvalidSpecError("environment", len(value), "too many variables")
        for key in value:
            if not key or "=" in key or "\0" in key:
                raise InvalidSpecError("environment", key, "not a valid variable name")
        return value

    @model_validator(mode="after")
    def _script_or_command(self) -> JobSpec:
        if (self.script is None) == (self.command is None):
            raise InvalidSpecError("script", None, "give exactly one of script or command")
        return self

    @classmethod
    def parse(cls, data: dict[str, Any]) -> JobSpec:
        """Build a spec from plain data.

        Raises:
            InvalidSpecError: a field is missing, unknown or has a bad value.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_spec_from(exc) from exc


def invalid_spec_from(exc: ValidationError) -> InvalidSpecError:
    """The first problem pydantic found, as jobgate's one validation error."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    return InvalidSpecError(field, first.get("input"), first["msg"])


def resolve_spec(spec: JobSpec) -> JobSpec:
    """Fill the fields the request left empty from the script's `#SBATCH` lines.

    An explicit request field always wins over a directive.

    Raises:
        InvalidSpecError: a directive has a bad value or is one jobgate does not know.
    """
    if spec.script is None:
        return spec
    directives = parse_sbatch_directives(spec.script)
    unknown = directives.pop("_unknown", [])
    if unknown:
        raise InvalidSpecError(
            "script", " ".join(unknown),
            "#SBATCH options jobgate does not support yet; remove them or set the field",
        )
    fill = {k: v for k, v in directives.items() if k not in spec.model_fields_set}
    if not fill:
        return spec
    merged = spec.model_dump(exclude_unset=True) | fill
    return JobSpec.parse(merged)


def job_memory(memory: int | None, memory_per_cpu: int | None, cpus: int) -> int:
    """MiB a job asks for in all (0: none asked, so none reserved or enforced)."""
    if memory is not None:
        return memory
    return (memory_per_cpu or 0) * cpus
