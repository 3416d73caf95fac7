"""Fixtures of the SDK tests (the live server and client come from tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def tag() -> str:
    """A tag no other test uses, to find this test's jobs in the shared ledger."""
    return f"t-{uuid.uuid4().hex[:10]}"
