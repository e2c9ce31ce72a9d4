"""The introspector's Prometheus metrics, one registry per app (no global state).

Labels are bounded enums only — never a token, e-mail, user id or path with ids in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from keygate_core.probes import metrics_response


@dataclass
class IntrospectorMetrics:
    """Every metric the introspector exports."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        """Declare every metric on :attr:`registry`, then pre-create the bounded label values."""
        counter = partial(Counter, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        self.token_create = counter(
            "keygate_api_token_create_total", "API tokens created.", ["scope"]
        )
        self.token_revoke = counter(
            "keygate_api_token_revoke_total", "API tokens revoked.", ["scope"]
        )
        self.auth_success = counter(
            "keygate_api_token_auth_success_total",
            "Introspections that found an active token.",
        )
        self.auth_failure = counter(
            "keygate_api_token_auth_failure_total",
            "Introspections that found no active token, by exact reason.",
            ["reason"],
        )
        self.cache_hit = counter(
            "keygate_introspection_cache_hit_total",
            "Introspections answered from Redis.",
        )
        self.cache_miss = counter(
            "keygate_introspection_cache_miss_total",
            "Introspections that had to read Postgres.",
        )
        self.cache_error = counter(
            "keygate_introspection_cache_error_total",
            "Redis cache operations that failed (the answer came from Postgres instead).",
        )
        self.cache_rejected = counter(
            "keygate_cache_entries_rejected_total",
            "Redis cache entries ignored because their MAC did not hold (written by someone "
            "without keygate's key); each is treated as a miss.",
        )
        self.verify_throttled = counter(
            "keygate_argon2_throttled_total",
            "Uncached verifications refused because of too many wrong secrets.",
            ["by"],
        )
        self.argon2_duration = histogram(
            "keygate_argon2_verify_duration_seconds",
            "Time to verify one secret with argon2id (off the event loop).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.http_duration = histogram(
            "keygate_introspector_http_request_duration_seconds",
            "HTTP request duration by route and status class.",
            ["route", "status"],
        )
        self.revocations_pending = counter(
            "keygate_revocation_delivery_failures_total",
            "Revocation announcements that could not reach Redis and were left for retry.",
        )
        for reason in ("invalid", "revoked", "expired", "malformed"):
            self.auth_failure.labels(reason)
        for scope in ("PERSONAL", "WORKSPACE", "ORGANIZATION"):
            self.token_create.labels(scope)
            self.token_revoke.labels(scope)

    def render(self, request: web.Request) -> web.Response:
        """The exposition for ``request`` (OpenMetrics when the scraper asks for it)."""
        return metrics_response(self.registry, request)
