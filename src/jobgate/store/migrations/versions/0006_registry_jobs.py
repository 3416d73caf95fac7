"""registry jobs: where a job comes from, the registry's own fields, upsert keys

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Each key's index covers only the registry jobs that have that key.
REGISTRY_NATIVE = "source = 'registry' AND native_id IS NOT NULL"
REGISTRY_ARRAY = "source = 'registry' AND array_job_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), server_default="gateway", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "registry_data",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.create_index(
            "ux_jobs_registry_native", ["cluster", "native_id"], unique=True,
            sqlite_where=sa.text(REGISTRY_NATIVE), postgresql_where=sa.text(REGISTRY_NATIVE),
        )
        batch_op.create_index(
            "ux_jobs_registry_array", ["cluster", "array_job_id", "array_task_id"], unique=True,
            sqlite_where=sa.text(REGISTRY_ARRAY), postgresql_where=sa.text(REGISTRY_ARRAY),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ux_jobs_registry_array")
        batch_op.drop_index("ux_jobs_registry_native")
        batch_op.drop_column("registry_data")
        batch_op.drop_column("source")
