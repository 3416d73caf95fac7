"""projects, memberships, token lifecycle, service accounts, audit

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import jobgate.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = jobgate.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_jobs_project_id", ["project", "id"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=256),
                                      server_default="", nullable=False))
        batch_op.add_column(sa.Column("active", sa.Boolean(), server_default=sa.text("true"),
                                      nullable=False))
        batch_op.add_column(sa.Column("roles", JSON, server_default=sa.text("'[]'"),
                                      nullable=False))

    # Tokens made before this revision get a public key id of their own.
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("expires_at", TIME, nullable=True))
        batch_op.add_column(sa.Column("revoked_at", TIME, nullable=True))
        batch_op.add_column(sa.Column("last_used_at", TIME, nullable=True))
        batch_op.add_column(sa.Column("acts_for", JSON, nullable=True))
    conn = op.get_bind()
    tokens = sa.table("tokens", sa.column("token_hash", sa.String), sa.column("key_id", sa.String))
    for (token_hash,) in conn.execute(sa.select(tokens.c.token_hash)).all():
        conn.execute(tokens.update().where(tokens.c.token_hash == token_hash)
                     .values(key_id=secrets.token_hex(6)))
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.alter_column("key_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_tokens_key_id"), ["key_id"])

    op.create_table(
        "projects",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("compute_project_id", sa.String(length=128), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=True),
        sa.Column("clusters", JSON, nullable=False),
        sa.Column("partitions", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "memberships",
        sa.Column("project_id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_memberships_project_id_projects"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_memberships")),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index("ix_memberships_user_id", ["user_id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("on_behalf_of", sa.String(length=128), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_actor_id", ["actor", "id"], unique=False)


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("memberships")
    op.drop_table("projects")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_tokens_key_id"), type_="unique")
        for column in ("acts_for", "last_used_at", "revoked_at", "expires_at", "key_id"):
            batch_op.drop_column(column)
    with op.batch_alter_table("users", schema=None) as batch_op:
        for column in ("roles", "active", "display_name"):
            batch_op.drop_column(column)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_project_id")
        batch_op.drop_column("project")
