"""Prometheus metrics of one gateway process, in a registry of its own."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from jobgate.service.jobs import utcnow
from jobgate.store.jobs import ledger_summary


class LedgerCollector(Collector):
    """Read at each scrape: jobs by cluster and state, and how old the newest event is."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("jobgate_jobs", "Jobs in the ledger", labels=["cluster", "state"])
        with self.sessions() as session:
            rows, newest = ledger_summary(session)
        for cluster, state, count in rows:
            jobs.add_metric([cluster, state], count)
        yield jobs
        lag = GaugeMetricFamily("jobgate_seconds_since_last_event",
                                "Seconds since the newest event of the log")
        lag.add_metric([], (utcnow() - newest).total_seconds() if newest else 0.0)
        yield lag


class Metrics:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(LedgerCollector(sessions))
        self.submit_seconds = Histogram(
            "jobgate_submit_seconds", "Time to validate and commit a submission",
            registry=self.registry)
        self.engine_round_seconds = Histogram(
            "jobgate_engine_round_seconds", "Time of one engine round", registry=self.registry)
        self.backend_calls = Counter(
            "jobgate_backend_calls", "Calls to cluster backends", ["cluster", "call"],
            registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
