"""The real app (store, engine, local cluster) behind FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_client import Api
from fastapi.testclient import TestClient

from jobgate.api.app import create_app
from jobgate.config import Settings


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings.load(home=tmp_path / "home", database_url=db_url, kill_wait=1.0,
                         engine_interval=0.1)


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with TestClient(create_app(settings)) as client:
        token = settings.admin_token_path.read_text().strip()
        yield Api(client, token)
