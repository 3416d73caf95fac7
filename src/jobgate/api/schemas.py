"""Response schemas of the API (request bodies are the domain's JobSpec)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from jobgate.domain.accounting import GroupBy, Usage, UsageReport
from jobgate.domain.job import JobRecord
from jobgate.domain.spec import JobSpec
from jobgate.domain.states import JobState
from jobgate.errors import InvalidSpecError
from jobgate.service.jobfiles import FileEntry
from jobgate.store.jobs import EventRecord
from jobgate.store.webhooks import Delivery, DeliveryStatus, Webhook


class JobOut(BaseModel):
    id: int
    name: str
    state: JobState
    state_reason: str | None
    final: bool
    held: bool
    user_name: str
    cluster: str
    partition: str
    account: str | None
    project: str | None = Field(None, description="The project the job is charged to "
                                                  "(null: its user is in no project)")
    num_nodes: int
    ntasks: int
    cpus_per_task: int
    cpus: int
    memory: int | None
    memory_per_cpu: int | None
    gpus: int
    time_limit: int | None
    priority: int
    tags: list[str]
    comment: str | None
    working_directory: str
    standard_output: str
    standard_error: str
    submit_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    run_time: int
    exit_code: int | None
    exit_code_signal: int | None
    requeue_count: int
    array_job_id: int | None
    array_task_id: int | None
    dependencies: str | None = Field(None, description="Slurm's dependency string, if any")
    qos: str | None = Field(None, description="The quality of service asked (Slurm's)")
    allocation: dict[str, Any] | None = Field(
        description="Resource layout: node, CPU ids, memory (MiB), GPU ids")
    cpu_time: float | None = Field(description="User + system CPU seconds of the process tree")
    max_rss: int | None = Field(description="Peak resident memory of the job, KiB")
    elapsed_cpu_time: int = Field(description="run_time x cpus")
    source: str = Field(description="gateway: submitted here; registry: pushed into the "
                                    "registry by an outside scheduler (no verbs apply)")
    registry_data: dict[str, Any] | None = Field(description=(
        "A registry job's record fields that have no field here (project_oid, "
        "priority_id, reservation, cluster_cockpit_id, nodes, allocated_resources, "
        "additional_data)"))

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        data = job.model_dump(exclude={"spec", "native_id", "stats"})
        stats = job.stats or {}
        run_time = job.run_time(datetime.now(UTC))
        cpu_time = (stats["cpu_user"] + stats["cpu_system"]
                    if "cpu_user" in stats and "cpu_system" in stats else None)
        return cls(**data, final=job.state.final, cpus=job.cpus, run_time=run_time,
                   dependencies=job.spec.dependencies, qos=job.spec.qos,
                   cpu_time=cpu_time, max_rss=stats.get("max_rss_kib"),
                   elapsed_cpu_time=run_time * job.cpus)


class JobList(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class EventOut(BaseModel):
    seq: int
    job_id: int
    at: datetime
    from_state: JobState | None
    to_state: JobState
    reason: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: EventRecord) -> EventOut:
        return cls(**event.__dict__)


class EventList(BaseModel):
    events: list[EventOut]


class FileEntryOut(BaseModel):
    path: str = Field(description="Relative to the job's working directory, with /")
    type: Literal["file", "dir", "symlink", "other"]
    size: int = Field(description="Bytes (0 for a directory)")
    mtime: datetime


class FileList(BaseModel):
    files: list[FileEntryOut]
    truncated: bool = Field(description="The listing stopped at `limit` entries")

    @classmethod
    def of(cls, entries: list[FileEntry], truncated: bool) -> FileList:
        return cls(files=[FileEntryOut(**entry.__dict__) for entry in entries],
                   truncated=truncated)


class Health(BaseModel):
    status: str


class HoldRequest(BaseModel):
    mode: Literal["user", "admin"] = "user"


class RequeueRequest(BaseModel):
    hold: bool = False


class SignalRequest(BaseModel):
    signal: str | int = Field(description="A name (USR1, SIGUSR1) or a number")


class NotifyRequest(BaseModel):
    message: str


class JobStats(BaseModel):
    """Usage of a job's current run (final figures once it has ended)."""

    id: int
    state: JobState
    run_time: int = Field(description="Seconds, suspended time included")
    cpus: int
    elapsed_cpu_time: int = Field(description="run_time x cpus")
    cpu_time: float | None = Field(description="User + system CPU seconds, once ended")
    cpu_user: float | None
    cpu_system: float | None
    max_rss: int | None = Field(description="Peak resident memory, KiB, once ended")
    suspended_seconds: float | None
    allocation: dict[str, Any] | None

    @classmethod
    def of(cls, job: JobRecord) -> JobStats:
        out = JobOut.of(job)
        stats = job.stats or {}
        return cls(id=job.id, state=job.state, run_time=out.run_time, cpus=job.cpus,
                   elapsed_cpu_time=out.elapsed_cpu_time, cpu_time=out.cpu_time,
                   cpu_user=stats.get("cpu_user"), cpu_system=stats.get("cpu_system"),
                   max_rss=out.max_rss, suspended_seconds=stats.get("suspended_seconds"),
                   allocation=job.allocation)


class ClusterOut(BaseModel):
    name: str
    backend: str
    default: bool
    partitions: list[dict[str, Any]]
    default_partition: str
    verbs: list[str]
    resources: dict[str, Any]
    load: dict[str, Any]


class ClusterList(BaseModel):
    clusters: list[ClusterOut]


class BatchRequest(BaseModel):
    # Plain objects here, so that an error can name the job by its index.
    jobs: list[dict[str, Any]] = Field(description="Up to 1,000 JobSpec objects")

    def specs(self) -> list[JobSpec]:
        """Raises:
        InvalidSpecError: naming the job as `jobs[i].field`.
        """
        specs = []
        for index, data in enumerate(self.jobs):
            try:
                specs.append(JobSpec.parse(data))
            except InvalidSpecError as exc:
                raise InvalidSpecError(f"jobs[{index}].{exc.field}", exc.value,
                                       exc.reason) from exc
        return specs


class BatchOut(BaseModel):
    jobs: list[JobOut]


class UsageOut(BaseModel):
    """Sums over the jobs of one group; each job counts as `GET /v1/jobs` shows it."""

    key: str | None = Field(description=(
        "The group: a project (for now the jobs' `account`, until jobs carry "
        "projects), a user, cluster, partition or state, or a UTC day (YYYY-MM-DD) "
        "of submit_time; null for jobs with no value (no account)"))
    count: int = Field(description="Jobs (each task of an array is one job)")
    cpus: int = Field(description="CPUs allocated: sum of ntasks x cpus_per_task")
    memory: int = Field(description=(
        "MiB asked for: sum of each job's memory, or memory_per_cpu x its CPUs, "
        "or 0 when it asked for none"))
    ntasks: int = Field(description="Sum of ntasks")
    elapsed_cpu_time: int = Field(description="Sum of run seconds x CPUs (CPU-seconds)")
    wall_time: int = Field(description=(
        "Sum of run seconds of the jobs that started: (end_time, or now while they "
        "run) - start_time, whole seconds per job"))
    queue_time: int = Field(description=(
        "Sum of seconds waited: (start_time, or end_time for a job that ended "
        "without starting, or now while it waits) - submit_time, whole seconds per job"))

    @classmethod
    def of(cls, usage: Usage) -> UsageOut:
        return cls(**usage.__dict__)


class UsageReportOut(BaseModel):
    """Usage of the jobs submitted in [since, until): a user's own jobs, or (an
    admin) every job, those pushed through the registry included."""

    group_by: GroupBy
    since: datetime | None = Field(description="Jobs submitted at or after this")
    until: datetime | None = Field(description="Jobs submitted before this")
    now: datetime = Field(description="The time the jobs still running or waiting count up to")
    groups: list[UsageOut] = Field(description="Ordered by key; a null key last")
    total: UsageOut = Field(description="Sums over all groups (key null)")

    @classmethod
    def of(cls, report: UsageReport) -> UsageReportOut:
        return cls(group_by=report.group_by, since=report.since, until=report.until,
                   now=report.now, groups=[UsageOut.of(g) for g in report.groups],
                   total=UsageOut.of(report.total))


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2048, description="http:// or https:// URL that gets the POSTs")
    secret: str | None = Field(
        None, min_length=16, max_length=256,
        description="Key of the HMAC-SHA256 signature; made for you when left out")
    description: str = Field("", max_length=256)


class WebhookOut(BaseModel):
    id: int
    user_name: str
    url: str
    description: str
    created_at: datetime
    last_seq: int = Field(description="Deliveries are made for events up to this seq")
    deliveries: dict[str, int] = Field(description="Deliveries by status")

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookOut:
        return cls(id=webhook.id, user_name=webhook.user_name, url=webhook.url,
                   description=webhook.description, created_at=webhook.created_at,
                   last_seq=webhook.last_seq, deliveries=webhook.counts)


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Shown this once: keep it to check the signatures")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int = Field(description="Sent as X-Jobgate-Delivery")
    webhook_id: int
    event_seq: int
    job_id: int
    to_state: JobState
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When pending: the next try")
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            id=delivery.id, webhook_id=delivery.webhook_id, event_seq=delivery.event_seq,
            job_id=delivery.job_id, to_state=delivery.payload["event"]["to_state"],
            status=delivery.status, attempts=delivery.attempts,
            last_status_code=delivery.last_status_code, last_error=delivery.last_error,
            created_at=delivery.created_at, last_attempt_at=delivery.last_attempt_at,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            delivered_at=delivery.delivered_at)


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


class RegistryResult(BaseModel):
    index: int = Field(description="The record's place in the request, from 0")
    status: Literal["created", "updated", "unchanged", "rejected"]
    id: int | None = Field(description="The ledger's job id (null when rejected)")
    field: str | None = Field(None, description="When rejected: the field to fix")
    reason: str | None = Field(None, description="When rejected: why, and what to fix")


class RegistryAnswer(BaseModel):
    """What became of each record, in the order sent."""

    created: int
    updated: int
    unchanged: int
    rejected: int
    results: list[RegistryResult]


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer."""

    error: str = Field(description=(
        "A stable code: invalid, not_found, conflict, unauthorized, forbidden, "
        "too_large, rate_limited, not_implemented, backend_error, ..."))
    message: str = Field(description="What went wrong, and what to fix")
    details: Any = Field(None, description=(
        "Structured facts: for `invalid`, a list of {field, value, reason}"))
