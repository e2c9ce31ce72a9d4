"""The gateway's Prometheus metrics, one registry per app. Labels are bounded enums only.

With several workers (``KEYGATE_GATEWAY_WORKERS``) a scrape reports the whole gateway: every
worker's values are merged from the run's shared metrics directory (keygate_core.worker_metrics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from dataclasses import dataclass, field
from typing import TypeVar, cast, get_args

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from gateway.metric_batch import SCRAPE_WAIT_SECONDS, MetricBatch
from gateway.token_cache import Lookup
from keygate_core.probes import metrics_response
from keygate_core.worker_metrics import scrape_registry, shares_metrics

M = TypeVar("M", bound=MetricWrapperBase)


@dataclass
class GatewayMetrics:
    """Every metric the gateway exports."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}
        self.batch = MetricBatch()
        r = self.registry
        self.request_duration = Histogram(
            "keygate_gateway_request_duration_seconds",
            "Gateway request duration by route rule and status class.",
            ["route", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=r,
        )
        self.auth_decisions = Counter(
            "keygate_gateway_auth_decisions_total",
            "Authentication outcomes by method (token, session, anonymous) and result.",
            ["method", "result"],
            registry=r,
        )
        self.ratelimit_decisions = Counter(
            "keygate_ratelimit_decisions_total",
            "Rate-limit decisions for bearer requests.",
            ["result"],
            registry=r,
        )
        self.ratelimit_degraded = Counter(
            "keygate_ratelimit_degraded_total",
            "Rate-limit decisions made without Redis (local bucket, or refused if fail-closed).",
            registry=r,
        )
        self.ratelimit_round_trips = Counter(
            "keygate_gateway_ratelimit_round_trips_total",
            "Redis round trips the rate limiter made; divide by keygate_ratelimit_decisions_total"
            " to get round trips per decision.",
            registry=r,
        )
        self.upstream_errors = Counter(
            "keygate_gateway_upstream_errors_total",
            "Requests the upstream did not answer, by kind (unreachable, timeout).",
            ["kind"],
            registry=r,
        )
        self.l1_lookups = Counter(
            "keygate_gateway_l1_cache_total",
            "In-process token cache lookups by result (hit, miss, wrong_secret).",
            ["result"],
            registry=r,
        )
        self.l1_entries = Gauge(
            "keygate_gateway_l1_cache_entries",
            "Tokens held in the in-process cache.",
            registry=r,
            # Summed over the workers that are running; a stopped worker's cache is gone.
            multiprocess_mode="livesum",
        )
        self.forwarded_ignored = Counter(
            "keygate_gateway_forwarded_for_ignored_total",
            "Requests whose X-Forwarded-For was ignored: the peer is not in "
            "KEYGATE_TRUSTED_PROXIES.",
            registry=r,
        )
        self._precreate_children()

    def _precreate_children(self) -> None:
        """Label values that exist from the start (dashboards see zeros, not gaps); then the
        registry is ready to scrape."""
        for result in ("allowed", "limited"):
            self.ratelimit_decisions.labels(result)
        for kind in ("unreachable", "timeout"):
            self.upstream_errors.labels(kind)
        for result in get_args(Lookup):
            self.l1_lookups.labels(result)
        self._scraped = scrape_registry(self.registry)

    def labels(self, metric: M, *values: str) -> M:
        """``metric.labels(*values)``, remembered: prometheus_client takes a lock and checks
        the values on every call, a measurable cost on the request path. Label values are
        bounded enums, so the memo stays small."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return cast(M, child)

    def forwarded_ignored_count(self) -> None:
        """Count one request whose X-Forwarded-For was ignored (batched, as on the data path)."""
        self.batch.count(self.forwarded_ignored)

    async def track_l1_entries(self, cache: Sized, every_seconds: float = 1.0) -> None:
        """With several workers, keep ``l1_entries`` at ``len(cache)`` until cancelled: a scrape
        sets only the gauge of the worker it reaches, and reports the others' last values.
        A single process returns at once (its scrape sets the gauge)."""
        if not shares_metrics():
            return
        while True:
            self.l1_entries.set(len(cache))
            await asyncio.sleep(every_seconds)

    def observe(self, metric: Histogram, seconds: float, *values: str) -> None:
        """Observe ``seconds`` in ``metric{values}`` at the batch's next flush (every 10 ms)."""
        self.batch.observe(self.labels(metric, *values), seconds)

    async def render(self, request: web.Request) -> web.Response:
        """The exposition for ``request`` (OpenMetrics when the scraper asks for it): this app's
        registry, or every worker's metrics merged when the gateway runs several (after
        waiting for their batches: see :mod:`gateway.metric_batch`)."""
        if shares_metrics():
            await asyncio.sleep(SCRAPE_WAIT_SECONDS)
        self.batch.flush()
        return metrics_response(self._scraped, request)
