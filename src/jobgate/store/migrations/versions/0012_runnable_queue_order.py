"""the queue of runnable jobs indexed in queue order (priority DESC, id)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# As store/tables.py RUNNABLE (a migration keeps its own copy: the model may change).
RUNNABLE = ("state = 'PENDING' AND held = false AND deleted_at IS NULL "
            "AND native_id IS NULL AND source = 'gateway'")


def upgrade() -> None:
    op.drop_index("ix_jobs_runnable", table_name="jobs")
    op.create_index("ix_jobs_runnable", "jobs", ["cluster", sa.text("priority DESC"), "id"],
                    sqlite_where=sa.text(RUNNABLE), postgresql_where=sa.text(RUNNABLE))


def downgrade() -> None:
    op.drop_index("ix_jobs_runnable", table_name="jobs")
    op.create_index("ix_jobs_runnable", "jobs", ["cluster", "priority", "id"],
                    sqlite_where=sa.text(RUNNABLE), postgresql_where=sa.text(RUNNABLE))
