"""create_app(settings): the FastAPI application, with no side effects until it starts."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from jobgate import __version__
from jobgate.api.audit import AuditMiddleware
from jobgate.api.error_docs import install_error_docs
from jobgate.api.errors import install_error_handlers
from jobgate.api.limits import BodySizeLimit
from jobgate.api.routes import (
    admin,
    clusters,
    control,
    deletion,
    events,
    files,
    health,
    jobs,
    metrics,
    registry,
    stats,
    uploads,
    webhooks,
)
from jobgate.config import Settings
from jobgate.service.gateway import Gateway


def create_app(settings: Settings | None = None, *, freeze_heap: bool = False) -> FastAPI:
    """Build the app; the store is migrated and the engine started on start-up.
    `freeze_heap` (a server process, not a test): once started, what start-up
    made is put out of the garbage collector's sight (see `served_app`)."""
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway(settings)
        gateway.start()
        app.state.gateway = gateway
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            gateway.stop()

    app = FastAPI(
        title="jobgate", version=__version__, lifespan=lifespan,
        description="A job gateway for compute clusters.",
    )
    install_error_handlers(app)
    install_error_docs(app)
    app.add_middleware(BodySizeLimit, upload_max_bytes=settings.upload_max_total_bytes,
                       upload_max_files=settings.upload_max_files)
    app.add_middleware(AuditMiddleware)
    app.include_router(health.router)
    app.include_router(uploads.router)  # multipart POST /v1/jobs: before the JSON route
    app.include_router(jobs.router)
    app.include_router(deletion.router)
    app.include_router(files.router)
    app.include_router(control.router)
    app.include_router(events.router)
    app.include_router(clusters.router)
    app.include_router(metrics.router)
    app.include_router(webhooks.router)
    app.include_router(stats.router)
    app.include_router(registry.router)
    app.include_router(admin.me_router)
    app.include_router(admin.router)
    return app


def served_app() -> FastAPI:
    """The app of `jobgate serve`. What start-up made lives as long as the
    process, so it is frozen out of the garbage collector's sight: a full
    collection would otherwise walk it (~150k objects, 50-150 ms with every
    thread stopped, which were the slowest requests' time). In a test process,
    which builds many apps, freezing would keep each one's garbage for good."""
    return create_app(freeze_heap=True)
