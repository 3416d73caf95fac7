"""Alembic environment: the engine comes from `store.db.migrate`, never from a file."""

from __future__ import annotations

from alembic import context

from jobgate.store.tables import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite can only alter tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
