"""Settings fields that several keygate services read, declared once.

A variable such as ``KEYGATE_INTERNAL_SECRET`` must mean the same thing — same parser, default
and documentation — in every service that reads it; each settings class takes its field from
here instead of re-declaring it.
"""

from __future__ import annotations

import enum
from typing import Any

from keygate_core.envconfig import (
    SettingsError,
    boolean,
    choice,
    float_between,
    int_between,
    setting,
    url,
)
from keygate_core.internal_secret import InternalSecrets
from keygate_core.redis_connect import RedisAddress


class LogLevel(enum.Enum):
    """Standard logging levels accepted by ``KEYGATE_LOG_LEVEL``."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def redis_url() -> Any:
    """``KEYGATE_REDIS_URL``."""
    return setting(
        "KEYGATE_REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis connection URL for the token cache, revocation channel and rate limiter: "
        "`redis://` (or `rediss://`, `unix://`) for one server, "
        "`redis+sentinel://host:port,host:port/service` for a primary found through Sentinel, "
        "`redis+cluster://host:port,host:port` for Redis Cluster.",
        parse=_redis_url,
        secret=True,
    )


def _redis_url(text: str) -> str:
    RedisAddress.parse(text)
    return text


def redis_timeout_ms() -> Any:
    """``KEYGATE_REDIS_TIMEOUT_MS``."""
    return setting(
        "KEYGATE_REDIS_TIMEOUT_MS",
        250,
        "Connect and command timeout for Redis; past it keygate carries on without Redis.",
        parse=int_between(10, 60000),
    )


def internal_secret() -> Any:
    """``KEYGATE_INTERNAL_SECRET``."""
    return setting(
        "KEYGATE_INTERNAL_SECRET",
        "",
        "Shared secret the gateway presents to the introspector (header "
        "`X-Keygate-Internal-Secret`); at least 32 characters. Required by both services.",
        default_text="(required)",
        secret=True,
    )


def internal_secret_previous() -> Any:
    """``KEYGATE_INTERNAL_SECRET_PREVIOUS``."""
    return setting(
        "KEYGATE_INTERNAL_SECRET_PREVIOUS",
        "",
        "While the internal secret is being rotated: the old one, still accepted from callers "
        "(and for CSRF tokens, form nonces and session records signed with it) next to "
        "`KEYGATE_INTERNAL_SECRET`. Only the current one is ever sent. Remove it once every "
        "service runs with the new secret.",
        default_text="(unset)",
        secret=True,
    )


def introspector_url() -> Any:
    """``KEYGATE_INTROSPECTOR_URL``."""
    return setting(
        "KEYGATE_INTROSPECTOR_URL",
        "http://127.0.0.1:8081",
        "Where the gateway reaches the introspector.",
        parse=url("http", "https"),
    )


def log_level() -> Any:
    """``KEYGATE_LOG_LEVEL``."""
    return setting(
        "KEYGATE_LOG_LEVEL",
        LogLevel.INFO,
        "Minimum level of the JSON log lines: debug, info, warning or error.",
        parse=choice(LogLevel),
    )


def shutdown_drain_seconds() -> Any:
    """``KEYGATE_SHUTDOWN_DRAIN_SECONDS``."""
    return setting(
        "KEYGATE_SHUTDOWN_DRAIN_SECONDS",
        0.0,
        "After SIGTERM, keep serving this long while `readyz` answers 503, so load balancers "
        "stop sending traffic before the service stops listening; then requests in flight get "
        "up to 10 s to finish.",
        default_text="0",
        parse=float_between(0, 300),
    )


def public_https() -> Any:
    """``KEYGATE_PUBLIC_HTTPS``."""
    return setting(
        "KEYGATE_PUBLIC_HTTPS",
        False,
        "`true` when browsers reach keygate over HTTPS, whether TLS ends at the gateway or at "
        "a proxy or ingress in front of it. keygate's cookies are then `Secure` and named "
        "`__Host-kg_session`, `__Host-kg_csrf`, `__Host-kg_ui_csrf` and `__Host-kg_device`, "
        "the admin UI sends "
        "`Strict-Transport-Security`, and its forms expect an `https://` origin. Read by the "
        "gateway and the admin UI; set it the same in both. Leave it `false` only for plain "
        "`http://` (such as `make demo` on 127.0.0.1).",
        parse=boolean,
    )


def session_ttl_seconds() -> Any:
    """``KEYGATE_SESSION_TTL_SECONDS``."""
    return setting(
        "KEYGATE_SESSION_TTL_SECONDS",
        28800,
        "How long a local login session lasts.",
        parse=int_between(60, 30 * 86400),
    )


def check_internal_secret(value: str, previous: str = "") -> InternalSecrets:
    """Refuse to serve without a usable shared secret; the secrets to accept."""
    if len(value) < 32:
        raise SettingsError(
            "KEYGATE_INTERNAL_SECRET",
            "required by the introspector and the gateway; use at least 32 random "
            "characters (e.g. `openssl rand -hex 32`)",
        )
    if previous and len(previous) < 32:
        raise SettingsError(
            "KEYGATE_INTERNAL_SECRET_PREVIOUS",
            "when set, the previous internal secret (at least 32 characters)",
        )
    return InternalSecrets(value, previous)
