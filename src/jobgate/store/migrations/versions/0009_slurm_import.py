"""slurm import: gateway jobs by their native id (an imported job is checked against them)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Only the gateway's jobs that were handed to a cluster.
GATEWAY_NATIVE = "source = 'gateway' AND native_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_gateway_native", ["cluster", "native_id"],
            sqlite_where=sa.text(GATEWAY_NATIVE), postgresql_where=sa.text(GATEWAY_NATIVE),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_gateway_native")
