"""the engine's queue of runnable jobs as a partial index

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# As store/tables.py RUNNABLE (a migration keeps its own copy: the model may change).
RUNNABLE = ("state = 'PENDING' AND held = false AND deleted_at IS NULL "
            "AND native_id IS NULL AND source = 'gateway'")


def upgrade() -> None:
    op.create_index("ix_jobs_runnable", "jobs", ["cluster", "priority", "id"],
                    sqlite_where=sa.text(RUNNABLE), postgresql_where=sa.text(RUNNABLE))


def downgrade() -> None:
    op.drop_index("ix_jobs_runnable", table_name="jobs")
