"""Gateway: wires settings, store, backends, services and the engine together."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event

from jobgate.backends import make_backend
from jobgate.config import Settings
from jobgate.service.access import SubmitRules
from jobgate.service.accounting import AccountingService
from jobgate.service.admin import AdminService
from jobgate.service.audit import AuditLog
from jobgate.service.auth import AuthService
from jobgate.service.clusters import ClusterService
from jobgate.service.control import JobControl
from jobgate.service.deletion import JobDeletion
from jobgate.service.doorbell import Doorbell
from jobgate.service.engine import Engine
from jobgate.service.events import EventBus
from jobgate.service.idempotency import IdempotentSubmit
from jobgate.service.imports import JobImports
from jobgate.service.jobfiles import JobFiles
from jobgate.service.jobs import JobService
from jobgate.service.metrics import Metrics
from jobgate.service.ratelimit import SubmitRateLimit
from jobgate.service.registry import RegistryService
from jobgate.service.throttle import AuthThrottle
from jobgate.service.uploads import UploadSubmit
from jobgate.service.webhook_dispatch import WebhookDispatcher
from jobgate.service.webhooks import WebhookService
from jobgate.store import make_engine, make_reader_engine, make_session_factory, migrate

log = logging.getLogger(__name__)


class Gateway:
    """Everything one jobgate process runs. `start()` has the side effects."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = make_engine(settings.resolved_database_url, **settings.database_pool)
        self.sessions = make_session_factory(self.db)
        self.db_reader = make_reader_engine(self.db)
        self.readers = make_session_factory(self.db_reader)
        self.backends = {
            name: make_backend(name, config, settings)
            for name, config in settings.clusters.items()
        }
        self.auth = AuthService(self.sessions, AuthThrottle(settings.auth_failure_limit,
                                                            settings.auth_failure_window),
                                cache_seconds=settings.token_cache_seconds,
                                readers=self.readers)
        self.jobs = JobService(self.sessions, settings, self.backends, readers=self.readers)
        self.jobs.authorize = SubmitRules(
            self.readers, require_project=settings.require_project).authorize
        self.admin = AdminService(self.sessions)
        self.audit = AuditLog(self.db)
        self.control = JobControl(self.jobs)
        self.idempotent = IdempotentSubmit(self.jobs)
        self.deletion = JobDeletion(self.jobs)
        self.files = JobFiles(self.jobs)
        self.uploads = UploadSubmit(self.jobs, self.idempotent)
        self.clusters = ClusterService(self.readers, settings, self.backends)
        self.metrics = Metrics(self.readers)
        self.accounting = AccountingService(self.readers)
        self.registry = RegistryService(self.sessions, settings.registry_max_batch)
        self.submit_limit = SubmitRateLimit(settings.submit_rate, settings.submit_burst)
        self.engine = Engine(self.jobs, self.backends, interval=settings.engine_interval,
                             metrics=self.metrics,
                             imports=JobImports(self.sessions, self.registry, self.backends))
        self.jobs.wake_engine = self.engine.wake
        self.bus = EventBus()
        # Any commit may have written events: the bus tells the waiters to look.
        event.listen(self.sessions, "after_commit", lambda _session: self.bus.ring())
        self.webhooks = WebhookService(self.sessions, settings)
        self.dispatcher = WebhookDispatcher(self.db, settings, interval=settings.engine_interval)
        self.webhooks.on_created = self.dispatcher.webhook_added
        event.listen(self.sessions, "after_commit", lambda _session: self.dispatcher.wake())
        # Other processes on this home (`serve --workers N`) hear of our commits too.
        self.doorbell = Doorbell(settings.resolved_home / "bell", self._rung_by_peer)
        event.listen(self.sessions, "after_commit", lambda _session: self.doorbell.ring())

    def _rung_by_peer(self) -> None:
        self.bus.ring()
        self.engine.wake()
        self.dispatcher.wake()

    def start(self) -> None:
        """Create the home, migrate the store, make the first admin, run the engine."""
        self.settings.resolved_home.mkdir(parents=True, exist_ok=True)
        self.settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        # Workers of one `serve --workers N` start together: one at a time here.
        with start_up_lock(self.settings.resolved_home):
            migrate(self.db)
            self.auth.ensure_admin(self.settings.admin_token_path)
        self.doorbell.start()
        self.audit.start()
        if self.settings.run_engine:
            self.engine.start()
            self.dispatcher.start()
        log.info("jobgate ready: store %s, clusters %s",
                 self.db.url.render_as_string(hide_password=True), ", ".join(self.backends))

    def stop(self) -> None:
        if self.settings.run_engine:
            self.engine.stop()
            self.dispatcher.stop()
        self.doorbell.stop()
        self.audit.stop()
        self.db.dispose()
        self.db_reader.dispose()


@contextmanager
def start_up_lock(home: Path) -> Iterator[None]:
    with open(home / "start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
