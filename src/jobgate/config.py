"""Settings: environment variables (JOBGATE_*) over `jobgate.toml` over defaults.

The toml file is `$JOBGATE_CONFIG`, else `$JOBGATE_HOME/jobgate.toml`, when present.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobgate.domain.parsing import parse_duration, parse_memory


class PartitionConfig(BaseModel):
    """A partition and its limits; times accept Slurm strings, memory '4G'."""

    name: str
    default: bool = False
    max_time: int | None = None
    default_time: int | None = None
    max_cpus_per_job: int | None = Field(None, ge=1)
    max_memory_per_job: int | None = Field(None, ge=0)
    # Jobs of a higher tier are considered first, whatever their priority.
    priority_tier: int = 0

    @field_validator("max_time", "default_time", mode="before")
    @classmethod
    def _time(cls, value: Any, info: Any) -> Any:
        return None if value is None else parse_duration(value, info.field_name)

    @field_validator("max_memory_per_job", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return None if value is None else parse_memory(value, "max_memory_per_job")


class ClusterConfig(BaseModel):
    backend: str = "local"
    partitions: list[PartitionConfig] = Field(
        default_factory=lambda: [PartitionConfig(name="normal", default=True)]
    )
    # The local cluster's node; None means what the machine has.
    cpus: int | None = Field(None, ge=1)
    memory: int | None = Field(None, ge=1)
    gpus: int | None = Field(None, ge=0)
    # The local cluster holds a job to its memory with a cgroup of its own where
    # the machine lets the job daemon make one (the kernel stops it at the
    # limit); else, or when false, by sampling its processes' RSS.
    memory_cgroup: bool = True
    # Slurm clusters (backend = "slurm"): "cli" runs Slurm's commands on this host;
    # job_dir is shared with the compute nodes (default: under the home); the
    # gateway id tags this gateway's jobs (default: made once, kept in the home);
    # accounting "auto" finds out whether sacct works; the poller's interval
    # adapts between poll_interval and poll_interval_max (seconds). Partitions
    # are read from the cluster unless listed here. import_jobs: jobs submitted
    # to the cluster outside jobgate enter the ledger as registry jobs.
    transport: Literal["cli", "rest"] = "cli"
    job_dir: str | None = None
    gateway_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    accounting: Literal["auto", "slurmdbd", "none"] = "auto"
    poll_interval: float = Field(0.5, gt=0)
    poll_interval_max: float = Field(2.0, gt=0)
    import_jobs: bool = False

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return None if value is None else parse_memory(value, "memory")

    @model_validator(mode="after")
    def _one_default(self) -> ClusterConfig:
        if not self.partitions:
            raise ValueError("a cluster needs at least one partition")
        if sum(p.default for p in self.partitions) > 1:
            raise ValueError("at most one partition may be the default")
        if self.import_jobs and self.backend != "slurm":
            raise ValueError("import_jobs needs backend = \"slurm\" (the local cluster "
                             "runs jobgate's jobs only)")
        return self

    @property
    def default_partition(self) -> str:
        for partition in self.partitions:
            if partition.default:
                return partition.name
        return self.partitions[0].name

    def partition(self, name: str) -> PartitionConfig | None:
        return next((p for p in self.partitions if p.name == name), None)

    # Slurm through slurmrestd (transport = "rest", openapi v0.0.38, JWT): its
    # URL, the Slurm user jobs run as (default: the token's own), and one
    # source of the token: given, read from a file (again when it changes) or
    # printed by a command such as `scontrol token lifespan=3600` (run again
    # before the token expires).
    rest_url: str | None = Field(None, pattern=r"^https?://")
    rest_user: str | None = None
    rest_token: str | None = None
    rest_token_file: str | None = None
    rest_token_command: str | None = None
    rest_timeout: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _rest_settings(self) -> ClusterConfig:
        if self.backend != "slurm" or self.transport != "rest":
            return self
        if not self.rest_url:
            raise ValueError("transport \"rest\" needs rest_url (slurmrestd's address, "
                             "e.g. \"http://slurm-head:6820\")")
        sources = [k for k in ("rest_token", "rest_token_file", "rest_token_command")
                   if getattr(self, k)]
        if len(sources) != 1:
            raise ValueError("transport \"rest\" needs exactly one of rest_token, "
                             "rest_token_file, rest_token_command (got "
                             f"{', '.join(sources) or 'none'})")
        return self


class Settings(BaseSettings):
    """Everything a jobgate process needs to know; build with `Settings.load()`."""

    model_config = SettingsConfigDict(env_prefix="JOBGATE_", extra="forbid")

    home: Path = Path("var")
    database_url: str | None = None
    # PostgreSQL connections each process keeps open, and how many more it may
    # open for a burst (closed again when given back). A request holds one
    # while it works; past what the pool keeps, every request paid for a new
    # connection (a server process forked), which cost a third of a submit's
    # throughput. Mind the server's max_connections: workers x (both).
    database_pool_size: int = Field(20, ge=1, le=1000)
    database_max_overflow: int = Field(10, ge=0, le=1000)
    host: str = "127.0.0.1"
    port: int = 8000
    run_engine: bool = True
    default_cluster: str = "local"
    clusters: dict[str, ClusterConfig] = Field(
        default_factory=lambda: {"local": ClusterConfig()}
    )
    # Seconds between SIGTERM and SIGKILL when a job is cancelled or times out.
    kill_wait: float = 10.0
    # Submissions a user may make a second after a burst (0: no limit).
    submit_rate: float = 200.0
    submit_burst: int = 1000
    # Failed authentications one address may make within the window before
    # every request from it gets 429 (per worker process; 0: no limit).
    auth_failure_limit: int = Field(20, ge=0)
    auth_failure_window: float = Field(60.0, gt=0)
    # Seconds a process may remember whose a bearer token is instead of reading
    # the store on each request (0: never). A revoked token, or a disabled
    # user's, then works that long after; expiry stays exact.
    token_cache_seconds: float = Field(0.0, ge=0, le=300)
    # Must every non-admin job name a project (else: users in no project
    # submit jobs outside any project)?
    require_project: bool = False
    # How often the engine looks again when nothing woke it.
    engine_interval: float = 0.5
    # Files sent with a job (multipart submissions, zip entries unpacked): bytes
    # in all, how many files, bytes of one file.
    upload_max_total_bytes: int = Field(1024**3, ge=0)
    upload_max_files: int = Field(1000, ge=0)
    upload_max_file_bytes: int = Field(256 * 1024**2, ge=0)
    # Records one POST /v1/registry/jobs may carry (more: 413).
    registry_max_batch: int = Field(1000, ge=1, le=10_000)
    # Webhooks: a failed POST is retried after backoff, 2 x backoff, ... (capped),
    # up to max_attempts tries in all; then the delivery is `failed`.
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_backoff: float = Field(1.0, gt=0)
    webhook_backoff_max: float = Field(300.0, gt=0)
    webhook_max_attempts: int = Field(12, ge=1)
    webhooks_per_user: int = Field(20, ge=0)

    @model_validator(mode="after")
    def _known_default_cluster(self) -> Settings:
        if self.default_cluster not in self.clusters:
            raise ValueError(f"default_cluster {self.default_cluster!r} is not configured")
        return self

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read `jobgate.toml` (if any), then the environment, then `overrides`."""
        home = Path(overrides.get("home") or os.environ.get("JOBGATE_HOME") or "var")
        path = Path(os.environ.get("JOBGATE_CONFIG") or home / "jobgate.toml")
        from_file: dict[str, Any] = {}
        if path.is_file():
            with path.open("rb") as handle:
                from_file = tomllib.load(handle)
        env = cls()  # environment only, to learn which fields it set
        data = from_file | env.model_dump(exclude_unset=True) | overrides
        return cls.model_validate(data)

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'jobgate.db'}"

    @property
    def database_pool(self) -> dict[str, int]:
        """make_engine's pool arguments: PostgreSQL's from these settings (a
        SQLite pool is sized in store/db.py)."""
        if self.resolved_database_url.startswith("sqlite"):
            return {}
        return {"pool_size": self.database_pool_size,
                "max_overflow": self.database_max_overflow}

    @property
    def admin_token_path(self) -> Path:
        return self.resolved_home / "admin.token"

    @property
    def jobs_dir(self) -> Path:
        return self.resolved_home / "jobs"
