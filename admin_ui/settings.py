"""The admin UI's settings, loaded once from ``KEYGATE_*`` variables.

Variables other services also read (``KEYGATE_INTROSPECTOR_URL``, ``KEYGATE_INTERNAL_SECRET``,
``KEYGATE_SESSION_TTL_SECONDS``, ``KEYGATE_LOG_LEVEL``) come from
:mod:`keygate_core.shared_settings`, so they have one parser, default and description.
"""

from __future__ import annotations

from dataclasses import dataclass

from keygate_core import shared_settings as shared
from keygate_core.envconfig import int_between, non_empty, setting
from keygate_core.shared_settings import LogLevel


@dataclass(frozen=True)
class AdminUISettings:
    """Everything the admin UI reads from the environment."""

    host: str = setting(
        "KEYGATE_ADMIN_UI_HOST",
        "127.0.0.1",
        "Address the admin UI listens on (`0.0.0.0` in containers).",
        parse=non_empty,
    )
    port: int = setting(
        "KEYGATE_ADMIN_UI_PORT",
        8082,
        "TCP port of the admin UI (the gateway forwards its pages there).",
        parse=int_between(0, 65535),
    )
    introspector_url: str = shared.introspector_url()
    internal_secret: str = shared.internal_secret()
    internal_secret_previous: str = shared.internal_secret_previous()
    session_ttl_seconds: int = shared.session_ttl_seconds()
    public_https: bool = shared.public_https()
    log_level: LogLevel = shared.log_level()
    shutdown_drain_seconds: float = shared.shutdown_drain_seconds()
