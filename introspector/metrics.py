"""The introspector's Prometheus metrics, one registry per app (no global state).

Labels are bounded enums only — never a token, e-mail, user id or path with ids in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from keygate_core.probes import metrics_response


@dataclass
class IntrospectorMetrics:
    """Every metric the introspector exports."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        """Declare every metric on :attr:`registry`, then pre-create the bounded label values.

        Long because it is one flat list of declarations: each is a name, a help text and its
        labels, and splitting the list would only hide which metrics exist.
        """
        r = self.registry
        self.token_create = Counter(
            "keygate_api_token_create_total", "API tokens created.", ["scope"], registry=r
        )
        self.token_revoke = Counter(
            "keygate_api_token_revoke_total", "API tokens revoked.", ["scope"], registry=r
        )
        self.auth_success = Counter(
            "keygate_api_token_auth_success_total",
            "Introspections that found an active token.",
            registry=r,
        )
        self.auth_failure = Counter(
            "keygate_api_token_auth_failure_total",
            "Introspections that found no active token, by exact reason.",
            ["reason"],
            registry=r,
        )
        self.cache_hit = Counter(
            "keygate_introspection_cache_hit_total",
            "Introspections answered from Redis.",
            registry=r,
        )
        self.cache_miss = Counter(
            "keygate_introspection_cache_miss_total",
            "Introspections that had to read Postgres.",
            registry=r,
        )
        self.cache_error = Counter(
            "keygate_introspection_cache_error_total",
            "Redis cache operations that failed (the answer came from Postgres instead).",
            registry=r,
        )
        self.verify_throttled = Counter(
            "keygate_argon2_throttled_total",
            "Uncached verifications refused because of too many wrong secrets.",
            ["by"],
            registry=r,
        )
        self.argon2_duration = Histogram(
            "keygate_argon2_verify_duration_seconds",
            "Time to verify one secret with argon2id (off the event loop).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.http_duration = Histogram(
            "keygate_introspector_http_request_duration_seconds",
            "HTTP request duration by route and status class.",
            ["route", "status"],
            registry=r,
        )
        self.revocations_pending = Counter(
            "keygate_revocation_delivery_failures_total",
            "Revocation announcements that could not reach Redis and were left for retry.",
            registry=r,
        )
        for reason in ("invalid", "revoked", "expired", "malformed"):
            self.auth_failure.labels(reason)
        for scope in ("PERSONAL", "WORKSPACE", "ORGANIZATION"):
            self.token_create.labels(scope)
            self.token_revoke.labels(scope)

    def render(self, request: web.Request) -> web.Response:
        """The exposition for ``request`` (OpenMetrics when the scraper asks for it)."""
        return metrics_response(self.registry, request)
