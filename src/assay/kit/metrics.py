"""Prometheus metrics: what this process did (counters, histograms) and, per scrape, what the
database says the deployment is doing (jobs by status, undispatched events, index sizes).

Counters live in `prometheus_client`'s default registry, with its process and platform
collectors: each process (API or `assay worker`) counts its own work, and Prometheus sums
them. State shared by every process (the job queue) is read from the database when scraped,
so any one API process tells the truth about it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay.kit.db import utcnow
from assay.models import Event, Job

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from assay.context import AppContext

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "assay_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "assay_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count an answered request and its duration (the request log's metrics)."""
    key = (method, route, status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        # `labels()` takes a lock and checks its arguments every time: look each child up once.
        if len(_REQUEST_CHILDREN) >= _MAX_CHILDREN:  # methods are the client's to choose
            _REQUEST_CHILDREN.clear()
        children = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_SECONDS.labels(method, route),
        )
        _REQUEST_CHILDREN[key] = children
    children[0].inc()
    children[1].observe(seconds)


_MAX_CHILDREN = 10_000
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

BATCH_OBJECTS = Counter(
    "assay_batch_objects", "Batch objects processed by this process", ["outcome"]
)
EXTRACTION_SECONDS = Histogram(
    "assay_extraction_seconds",
    "Seconds an extractor took for one chunk of a batch job",
    ["extractor"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
WEBHOOK_DELIVERIES = Counter(
    "assay_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"]
)
WEBHOOK_LAG = Histogram(
    "assay_webhook_delivery_lag_seconds",
    "From an event's occurrence to its successful delivery",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)


_JOB_STATUSES = ("queued", "running", "done", "failed")


class _DeploymentCollector(Collector):
    """Gauges read from the database (and this process's indexes) at scrape time."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("assay_jobs", "Jobs by status (all processes)", labels=["status"])
        waiting = GaugeMetricFamily(
            "assay_events_undispatched", "Events not yet handed to the webhook dispatcher"
        )
        oldest = GaugeMetricFamily(
            "assay_events_undispatched_oldest_seconds",
            "Age of the oldest event not yet dispatched (0 when none)",
        )
        counts, (pending, since) = self.ctx.db.read_sync(_queue_state)
        # The usual statuses always appear (0 when none), any other as found.
        for status, n in ({s: 0 for s in _JOB_STATUSES} | counts).items():
            jobs.add_metric([status], n)
        waiting.add_metric([], pending)
        oldest.add_metric([], since)
        yield from (jobs, waiting, oldest)
        yield self._index_sizes()

    def _index_sizes(self) -> Metric:
        sizes = GaugeMetricFamily(
            "assay_vector_index_vectors",
            "Vectors in each vector index this process has open",
            labels=["collection_id", "feature_uri"],
        )
        for (collection_id, feature_uri), n in self.ctx.searcher.indexes.open_sizes().items():
            sizes.add_metric([collection_id, feature_uri], n)
        return sizes


def _queue_state(session: Session) -> tuple[dict[str, int], tuple[int, float]]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    counts = {str(status).lower(): int(n) for status, n in rows}
    pending, first = session.execute(
        select(func.count(), func.min(Event.occurred_at)).where(Event.dispatched_at.is_(None))
    ).one()
    age = 0.0
    if first is not None:
        if first.tzinfo is None:  # SQLite returns what it stored: naive UTC
            first = first.replace(tzinfo=utcnow().tzinfo)
        age = max(0.0, (utcnow() - first).total_seconds())
    return counts, (int(pending), age)


def exposition(ctx: AppContext) -> tuple[bytes, str]:
    """The scrape's body and content type: this process's metrics, then the deployment's."""
    deployment = CollectorRegistry(auto_describe=False)
    deployment.register(_DeploymentCollector(ctx))
    return generate_latest(REGISTRY) + generate_latest(deployment), CONTENT_TYPE_LATEST
