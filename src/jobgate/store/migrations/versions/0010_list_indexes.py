"""list indexes: a user's jobs in one state, newest first

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # GET /v1/jobs?user=..&state=.. (and a non-admin's own jobs in a state):
    # walked backwards from the cursor. On (user_name, id) alone a page of a
    # rare state read every job of the user down to 100 matches.
    # Not in batch mode: SQLite creates an index in place, no table copy.
    op.create_index("ix_jobs_user_state_id", "jobs", ["user_name", "state", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_user_state_id", table_name="jobs")
