"""The ledger's tables. Every change of a job is one row of `job_events`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from jobgate.store.types import BigId, JsonDoc, UTCDateTime

# The jobs a scheduling round may start: the engine reads them off a partial
# index in queue order, so that held jobs (and jobs handed to Slurm) cost a
# round nothing however many there are. Queries repeat this text word for word:
# SQLite uses a partial index only for a WHERE that contains its terms.
RUNNABLE = ("state = 'PENDING' AND held = false AND deleted_at IS NULL "
            "AND native_id IS NULL AND source = 'gateway'")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


REGISTRY_NATIVE = "source = 'registry' AND native_id IS NOT NULL"
REGISTRY_ARRAY = "source = 'registry' AND array_job_id IS NOT NULL"
GATEWAY_NATIVE = "source = 'gateway' AND native_id IS NOT NULL"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str | None] = mapped_column(String(256))
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    user_name: Mapped[str] = mapped_column(String(128))
    cluster: Mapped[str] = mapped_column(String(64))
    partition: Mapped[str] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(128))
    # The project the job was submitted to (None: a user in no project).
    project: Mapped[str | None] = mapped_column(String(128))
    num_nodes: Mapped[int] = mapped_column(Integer)
    ntasks: Mapped[int] = mapped_column(Integer)
    cpus_per_task: Mapped[int] = mapped_column(Integer)
    memory: Mapped[int | None] = mapped_column(Integer)
    memory_per_cpu: Mapped[int | None] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    time_limit: Mapped[int | None] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    comment: Mapped[str | None] = mapped_column(Text)
    working_directory: Mapped[str] = mapped_column(Text)
    standard_output: Mapped[str] = mapped_column(Text)
    standard_error: Mapped[str] = mapped_column(Text)
    submit_time: Mapped[datetime] = mapped_column(UTCDateTime)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    exit_code_signal: Mapped[int | None] = mapped_column(Integer)
    requeue_count: Mapped[int] = mapped_column(Integer, default=0)
    native_id: Mapped[str | None] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    # Slurm's ArrayJobId/ArrayTaskId (the registry's group_id/group_index).
    array_job_id: Mapped[int | None] = mapped_column(BigId)
    array_task_id: Mapped[int | None] = mapped_column(Integer)
    # Where the job runs: {"node", "cpus": [ids], "memory", "gpus": [ids]}.
    allocation: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    # Usage of the last run: cpu_user, cpu_system (s), max_rss_kib, suspended_seconds.
    stats: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    # "gateway": submitted here and run by the engine; "registry": pushed by an
    # outside scheduler (POST /v1/registry/jobs), which the engine never touches.
    source: Mapped[str] = mapped_column(String(16), default="gateway",
                                        server_default="gateway")
    # The registry record's fields that have no ledger column (project_oid,
    # priority_id, reservation, cluster_cockpit_id, nodes, allocated_resources,
    # additional_data); None for jobs submitted here.
    registry_data: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    # A deleted job is a tombstone: its row and events stay (ids are never
    # reused, the event log is never rewritten), every view leaves it out.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tags: Mapped[list[JobTagRow]] = relationship(
        back_populates="job", cascade="all, delete-orphan", lazy="selectin",
        order_by="JobTagRow.position",
    )

    __table_args__ = (
        # The engine's queue: active jobs of a cluster, in priority then submit order.
        Index("ix_jobs_cluster_state_priority", "cluster", "state", "priority", "id"),
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_user_id", "user_name", "id"),
        # A user's jobs in a state, newest first (list filters; migration 0010).
        Index("ix_jobs_user_state_id", "user_name", "state", "id"),
        Index("ix_jobs_partition_id", "partition", "id"),
        Index("ix_jobs_project_id", "project", "id"),
        Index("ix_jobs_array", "array_job_id", "array_task_id"),
        # The registry's upsert keys: (cluster, job_id) and (cluster, group_id,
        # group_index), unique among registry jobs only. Each index covers only
        # the rows that have its key, so that a lookup by one key can never use
        # the other's index (a planner with stale statistics would).
        Index("ux_jobs_registry_native", "cluster", "native_id", unique=True,
              sqlite_where=text(REGISTRY_NATIVE), postgresql_where=text(REGISTRY_NATIVE)),
        Index("ux_jobs_registry_array", "cluster", "array_job_id", "array_task_id",
              unique=True, sqlite_where=text(REGISTRY_ARRAY),
              postgresql_where=text(REGISTRY_ARRAY)),
        # Gateway jobs by their Slurm id: an imported outside job is checked
        # against them (never one Slurm job twice in the ledger).
        Index("ix_jobs_gateway_native", "cluster", "native_id",
              sqlite_where=text(GATEWAY_NATIVE), postgresql_where=text(GATEWAY_NATIVE)),
    )


# Runnable jobs in queue order (migration 0012): `ORDER BY priority DESC, id
# LIMIT n` reads the head of the engine's queue straight off it.
Index("ix_jobs_runnable", JobRow.cluster, JobRow.priority.desc(), JobRow.id,
      sqlite_where=text(RUNNABLE), postgresql_where=text(RUNNABLE))


class JobTagRow(Base):
    __tablename__ = "job_tags"

    job_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    job: Mapped[JobRow] = relationship(back_populates="tags")

    __table_args__ = (Index("ix_job_tags_tag_job_id", "tag", "job_id"),)


class JobEventRow(Base):
    __tablename__ = "job_events"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigId, ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(256))
    data: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)

    __table_args__ = (Index("ix_job_events_job_id_seq", "job_id", "seq"),)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    display_name: Mapped[str] = mapped_column(String(256), default="", server_default="")
    # A disabled user's tokens stop working at once; their jobs stay.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Extra rights beyond the rules on jobs, e.g. "ingest" (registry pushes).
    roles: Mapped[list[str]] = mapped_column(JsonDoc, default=list)


class TokenRow(Base):
    __tablename__ = "tokens"

    # Only a hash is kept: a leaked database does not leak working tokens.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The public name of the token (list, revoke); the token itself is shown once.
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A service account's token: the projects whose users it may act for
    # (X-On-Behalf-Of); None for a token that acts only as its user.
    acts_for: Mapped[list[str] | None] = mapped_column(JsonDoc)

    __table_args__ = (Index("ix_tokens_user_id", "user_id"),)


class ProjectRow(Base):
    """A project: who may use it, where its jobs may run, which account pays."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    compute_project_id: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    # The Slurm account its jobs are charged to (None: the job's own).
    account: Mapped[str | None] = mapped_column(String(128))
    # Where its jobs may run; an empty list allows every one.
    clusters: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    partitions: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MembershipRow(Base):
    """A user in a project: `member` (sees its jobs) or `manager` (steers them)."""

    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_memberships_user_id", "user_id"),)


class AuditRow(Base):
    """One state-changing API call: who, for whom, what, when, from where."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The authenticated user (None: authentication failed), and the user a
    # service account acted for.
    actor: Mapped[str | None] = mapped_column(String(128))
    on_behalf_of: Mapped[str | None] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_log_actor_id", "actor", "id"),)


class LeaseRow(Base):
    """Who runs a singleton (the engine) for this store, until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyKeyRow(Base):
    """A create request's Idempotency-Key, stored with its answer in the same
    transaction as what it created."""

    __tablename__ = "idempotency_keys"

    user_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookRow(Base):
    """A URL that gets every event its owner may see, signed with `secret`."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_name: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    # Kept as given: signing needs it (a hash would not do).
    secret: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The dispatcher has made deliveries of every event up to this seq.
    last_seq: Mapped[int] = mapped_column(BigId, default=0)

    __table_args__ = (Index("ix_webhooks_user_name_id", "user_name", "id"),)


class WebhookDeliveryRow(Base):
    """One event to POST to one webhook, and how that went."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_seq: Mapped[int] = mapped_column(BigId)
    # No foreign key: a delivery outlives a deleted job (its payload is stored).
    job_id: Mapped[int] = mapped_column(BigId)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_seq", "webhook_id", "event_seq", unique=True),
        # The dispatcher's queue, and the order within one job's chain.
        Index("ix_webhook_deliveries_status_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_chain", "webhook_id", "job_id", "event_seq"),
    )
