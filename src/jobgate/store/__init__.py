"""The ledger: SQLAlchemy tables, engine set-up, migrations and repositories."""

from jobgate.store.db import make_engine, make_reader_engine, make_session_factory, migrate

__all__ = ["make_engine", "make_reader_engine", "make_session_factory", "migrate"]
