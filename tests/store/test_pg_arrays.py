"""Columns packed as PostgreSQL binary arrays (store.pg_arrays) read back by a
real server as the values they were made of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import psycopg
import pytest
from sqlalchemy import text

from jobgate.store import make_engine
from jobgate.store.pg_arrays import pack_array, register_packed_arrays

EAST = timezone(timedelta(hours=5, minutes=30))
COLUMNS: list[tuple[str, list[Any]]] = [
    ("text", ["", "plain", "zürich ✓ 東京", None, "x" * 5000]),
    ("integer", [0, -1, 2**31 - 1, -(2**31), None]),
    ("integer", [7, 8, 9]),
    ("bigint", [2**63 - 1, -(2**63), 0, None]),
    ("boolean", [True, False, None]),
    ("timestamptz", [datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
                     datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                     datetime(2026, 3, 1, 17, 30, tzinfo=EAST), None]),
    ("jsonb", [{"qos": "normal", "nested": [1, 2.5, None, {"a": "é"}]}, [], "text", None,
               orjson.Fragment(b'{"kept": "as sent"}')]),
    ("text", []),
]


@pytest.fixture
def connection(postgres_server: str) -> Any:
    with psycopg.connect(postgres_server) as conn:
        register_packed_arrays(conn)
        yield conn


@pytest.mark.parametrize(("kind", "values"), COLUMNS,
                         ids=[f"{kind}-{len(values)}" for kind, values in COLUMNS])
def test_a_packed_column_reads_back_as_its_values(connection: Any, kind: str,
                                                  values: list[Any]) -> None:
    row = connection.execute(f"SELECT CAST(%(column)b AS {kind}[])",
                             {"column": pack_array(kind, values)}).fetchone()
    expected = [orjson.loads(orjson.dumps(value)) if kind == "jsonb" and value is not None
                else value for value in values]
    assert row[0] == expected


def test_a_packed_column_unnests_beside_another_in_order(connection: Any) -> None:
    rows = connection.execute(
        "SELECT * FROM unnest(CAST(%(a)b AS integer[]), CAST(%(b)b AS text[]))",
        {"a": pack_array("integer", [3, 1, 2]), "b": pack_array("text", ["c", None, "b"])},
    ).fetchall()
    assert rows == [(3, "c"), (1, None), (2, "b")]


def test_a_naive_time_is_refused_before_it_is_sent() -> None:
    with pytest.raises(TypeError):
        pack_array("timestamptz", [datetime(2026, 3, 1)])  # naive: no offset to place it


def test_every_connection_of_a_postgresql_engine_binds_packed_arrays(
        postgres_server: str) -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            assert driver is not None
            got = driver.execute("SELECT CAST(%(x)b AS bigint[])",
                                 {"x": pack_array("bigint", [5, None])}).fetchone()
            assert got[0] == [5, None]
            # SQLAlchemy's own statements on the same connection are untouched.
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_times_in_a_zone_with_rules_are_placed_by_their_own_offsets(connection: Any) -> None:
    # Berlin is UTC+1 in winter and UTC+2 in summer: two times of that one zone
    # are not a fixed distance apart on its clock.
    berlin = ZoneInfo("Europe/Berlin")
    times = [datetime(2026, 1, 15, 12, 0, tzinfo=berlin),
             datetime(2026, 7, 15, 12, 0, tzinfo=berlin)]
    row = connection.execute("SELECT CAST(%(t)b AS timestamptz[])",
                             {"t": pack_array("timestamptz", times)}).fetchone()
    assert [t.astimezone(UTC).hour for t in row[0]] == [11, 10]
