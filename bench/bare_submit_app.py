"""The bare endpoint bench/api_submit.py measures jobgate against.

    BARE_DB=/tmp/x.db .venv/bin/python -m uvicorn bare_submit_app:create_app \
        --factory --app-dir bench --workers 2

The least a submit endpoint built on the same stack can do: FastAPI validates a
pydantic body, one SQLite row is inserted and committed (WAL, synchronous=NORMAL,
BEGIN IMMEDIATE, as jobgate's store does), and a pydantic model is answered 201
as JSON. Sync handlers run in the thread pool, as jobgate's do. No auth, no
events, no idempotency, no rate limit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from pydantic import BaseModel, Field

SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, command TEXT, hold INTEGER,
    cpus INTEGER, memory INTEGER, time_limit INTEGER, state TEXT NOT NULL,
    spec TEXT NOT NULL, submit_time TEXT NOT NULL)"""
INSERT = ("INSERT INTO jobs (name, command, hold, cpus, memory, time_limit, state, spec, "
          "submit_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


class Spec(BaseModel):
    name: str | None = Field(None, max_length=256)
    command: str = Field(max_length=65536)
    hold: bool = False
    cpus: int = Field(1, ge=1)
    memory: int | None = Field(None, ge=1)
    time_limit: int | None = Field(None, ge=1)
    tags: list[str] = Field(default_factory=list, max_length=64)


class Job(BaseModel):
    id: int
    name: str
    command: str
    state: str
    held: bool
    cpus: int
    memory: int | None
    time_limit: int | None
    tags: list[str]
    submit_time: datetime


class Batch(BaseModel):
    jobs: list[Spec] = Field(max_length=1000)


class BatchOut(BaseModel):
    jobs: list[Job]


def _row(spec: Spec, now: datetime) -> tuple[object, ...]:
    return (spec.name or "wrap", spec.command, spec.hold, spec.cpus, spec.memory,
            spec.time_limit, "PENDING", json.dumps(spec.model_dump(exclude_unset=True)),
            now.isoformat())


def _job(job_id: int, spec: Spec, now: datetime) -> Job:
    return Job(id=job_id, name=spec.name or "wrap", command=spec.command, state="PENDING",
               held=spec.hold, cpus=spec.cpus, memory=spec.memory,
               time_limit=spec.time_limit, tags=spec.tags, submit_time=now)


def create_app() -> FastAPI:
    path = os.environ["BARE_DB"]
    local = threading.local()

    def connection() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            local.conn = conn
        return conn

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        connection().execute(SCHEMA)
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/jobs", status_code=201, response_model=Job)
    def submit(spec: Spec) -> Job:
        now = datetime.now(UTC)
        conn = connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            job_id = conn.execute(INSERT, _row(spec, now)).lastrowid
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        assert job_id is not None
        return _job(job_id, spec, now)

    @app.post("/v1/jobs:batch", status_code=201, response_model=BatchOut)
    def submit_batch(batch: Batch) -> BatchOut:
        now = datetime.now(UTC)
        conn = connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [conn.execute(INSERT + " RETURNING id", _row(spec, now)).fetchone()[0]
                   for spec in batch.jobs]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return BatchOut(jobs=[_job(i, s, now) for i, s in zip(ids, batch.jobs, strict=True)])

    return app
