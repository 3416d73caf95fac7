"""ledger: jobs, tags, events, users, tokens

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import jobgate.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.String(length=256), nullable=True),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.Column("cluster", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=True),
        sa.Column("num_nodes", sa.Integer(), nullable=False),
        sa.Column("ntasks", sa.Integer(), nullable=False),
        sa.Column("cpus_per_task", sa.Integer(), nullable=False),
        sa.Column("memory", sa.Integer(), nullable=True),
        sa.Column("memory_per_cpu", sa.Integer(), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("time_limit", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("working_directory", sa.Text(), nullable=False),
        sa.Column("standard_output", sa.Text(), nullable=False),
        sa.Column("standard_error", sa.Text(), nullable=False),
        sa.Column("submit_time", jobgate.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("start_time", jobgate.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_time", jobgate.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", jobgate.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("exit_code_signal", sa.Integer(), nullable=True),
        sa.Column("requeue_count", sa.Integer(), nullable=False),
        sa.Column("native_id", sa.String(length=128), nullable=True),
        sa.Column(
            "spec",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_cluster_state_priority", ["cluster", "state", "priority", "id"], unique=False
        )
        batch_op.create_index("ix_jobs_partition_id", ["partition", "id"], unique=False)
        batch_op.create_index("ix_jobs_state_id", ["state", "id"], unique=False)
        batch_op.create_index("ix_jobs_user_id", ["user_name", "id"], unique=False)

    op.create_table(
        "users",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", jobgate.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "job_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", jobgate.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_job_events")),
    )
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.create_index("ix_job_events_job_id_seq", ["job_id", "seq"], unique=False)

    op.create_table(
        "job_tags",
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_tags_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "tag", name=op.f("pk_job_tags")),
    )
    with op.batch_alter_table("job_tags", schema=None) as batch_op:
        batch_op.create_index("ix_job_tags_tag_job_id", ["tag", "job_id"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("created_at", jobgate.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_tokens")),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index("ix_tokens_user_id", ["user_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_tokens_user_id")

    op.drop_table("tokens")
    with op.batch_alter_table("job_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_job_tags_tag_job_id")

    op.drop_table("job_tags")
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_index("ix_job_events_job_id_seq")

    op.drop_table("job_events")
    op.drop_table("users")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_user_id")
        batch_op.drop_index("ix_jobs_state_id")
        batch_op.drop_index("ix_jobs_partition_id")
        batch_op.drop_index("ix_jobs_cluster_state_priority")

    op.drop_table("jobs")
