"""The gateway's settings, loaded once from ``KEYGATE_*`` variables."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from keygate_core import shared_settings as shared
from keygate_core.envconfig import (
    SettingsError,
    boolean,
    choice,
    int_between,
    non_empty,
    setting,
    url,
)
from keygate_core.internal_secret import InternalSecrets
from keygate_core.shared_settings import LogLevel

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SessionMode(enum.Enum):
    """How requests without a bearer token are treated."""

    PASSTHROUGH = "passthrough"  # forward cookies untouched; the upstream decides
    UPSTREAM = "upstream"  # ask KEYGATE_SESSION_CHECK_URL who the cookie belongs to
    LOCAL = "local"  # keygate's own login (admin UI), sessions in Redis


def networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs or addresses (``10.0.0.0/8, 127.0.0.1``)."""
    found: list[Network] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or CIDR range") from None
    return tuple(found)


IDENTITY_FIELDS = (
    "user_id",
    "email",
    "workspace_id",
    "token_id",
    "token_scope",
    "auth_method",
    "external_id",
)


def header_names(text: str) -> dict[str, str]:
    """``field=Header-Name`` pairs, comma-separated, overriding the default identity headers."""
    names: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        field, sep, header = part.partition("=")
        field, header = field.strip(), header.strip()
        if not sep or field not in IDENTITY_FIELDS:
            raise ValueError(f"expected field=Header-Name with field one of {IDENTITY_FIELDS}")
        if not header or not all(c.isalnum() or c == "-" for c in header):
            raise ValueError(f"{header!r} is not a valid header name")
        names[field] = header
    return names


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway reads from the environment."""

    host: str = setting(
        "KEYGATE_GATEWAY_HOST",
        "127.0.0.1",
        "Address the gateway listens on (`0.0.0.0` in containers).",
        parse=non_empty,
    )
    port: int = setting(
        "KEYGATE_GATEWAY_PORT", 8080, "TCP port of the gateway.", parse=int_between(0, 65535)
    )
    workers: int = setting(
        "KEYGATE_GATEWAY_WORKERS",
        1,
        "Gateway processes sharing the port, each with its own event loop, L1 cache and metrics.",
        parse=int_between(1, 64),
    )
    ops_host: str = setting(
        "KEYGATE_GATEWAY_OPS_HOST",
        "127.0.0.1",
        "Address of the ops listener (KEYGATE_GATEWAY_OPS_PORT); `0.0.0.0` for a Prometheus "
        "outside the pod or container.",
        parse=non_empty,
    )
    ops_port: int | None = setting(
        "KEYGATE_GATEWAY_OPS_PORT",
        None,
        "TCP port of a listener of its own for `/_keygate/metrics` and `/_keygate/readyz`; "
        "once set, the public port answers 404 for both (`/_keygate/healthz` stays on both).",
        parse=int_between(1, 65535),
        default_text="(unset: served on the public port)",
    )
    upstream_url: str = setting(
        "KEYGATE_UPSTREAM_URL",
        "http://127.0.0.1:3000",
        "The application keygate protects; everything not reserved for keygate goes there.",
        parse=url("http", "https"),
    )
    introspector_url: str = shared.introspector_url()
    internal_secret: str = shared.internal_secret()
    internal_secret_previous: str = shared.internal_secret_previous()
    redis_url: str = shared.redis_url()
    redis_timeout_ms: int = shared.redis_timeout_ms()
    introspector_timeout_ms: int = setting(
        "KEYGATE_INTROSPECTOR_TIMEOUT_MS",
        2000,
        "How long a bearer request waits for the introspector before answering 503.",
        parse=int_between(10, 60000),
    )
    admin_ui_url: str = setting(
        "KEYGATE_ADMIN_UI_URL",
        "http://127.0.0.1:8082",
        "Where the gateway reaches the admin UI (serves /settings/api-keys and /_keygate/login).",
        parse=url("http", "https"),
    )
    upstream_timeout_seconds: int = setting(
        "KEYGATE_UPSTREAM_TIMEOUT_SECONDS",
        60,
        "How long the gateway waits for the upstream's response headers before answering 504.",
        parse=int_between(1, 3600),
    )
    upstream_max_connections: int = setting(
        "KEYGATE_UPSTREAM_MAX_CONNECTIONS",
        512,
        "Most connections open at once to each upstream base URL; a request finding them all "
        "busy waits up to KEYGATE_UPSTREAM_QUEUE_SECONDS for one, then gets 504.",
        parse=int_between(1, 100_000),
    )
    upstream_queue_seconds: int = setting(
        "KEYGATE_UPSTREAM_QUEUE_SECONDS",
        10,
        "How long a request waits for a free upstream connection when "
        "KEYGATE_UPSTREAM_MAX_CONNECTIONS are busy, before answering 504.",
        parse=int_between(1, 600),
    )
    header_timeout_seconds: int = setting(
        "KEYGATE_HEADER_TIMEOUT_SECONDS",
        20,
        "A client must send a whole request head within this long of its first byte, or its "
        "connection is closed.",
        parse=int_between(1, 3600),
    )
    keepalive_timeout_seconds: int = setting(
        "KEYGATE_KEEPALIVE_TIMEOUT_SECONDS",
        75,
        "An idle client keep-alive connection (no request in flight) is closed after this long.",
        parse=int_between(1, 3600),
    )
    body_timeout_seconds: int = setting(
        "KEYGATE_BODY_TIMEOUT_SECONDS",
        30,
        "A request body that stops arriving for this long is answered 408 and its connection "
        "(and the upstream's) closed.",
        parse=int_between(1, 3600),
    )
    websocket_max_seconds: int = setting(
        "KEYGATE_WEBSOCKET_MAX_SECONDS",
        3600,
        "A proxied WebSocket is closed (1001) after this long, whatever its traffic; clients "
        "reconnect and are authenticated again.",
        parse=int_between(1, 7 * 86400),
    )
    websocket_idle_seconds: int = setting(
        "KEYGATE_WEBSOCKET_IDLE_SECONDS",
        300,
        "A proxied WebSocket with no message either way for this long is closed (1001).",
        parse=int_between(1, 86400),
    )
    rate_limit_per_minute: int = setting(
        "KEYGATE_RATE_LIMIT_PER_MINUTE",
        600,
        "Default token-bucket size and refill per minute, per token (a token may override it).",
        parse=int_between(1, 10_000_000),
    )
    rate_limit_fail_open: bool = setting(
        "KEYGATE_RATE_LIMIT_FAIL_OPEN",
        True,
        "When Redis is unavailable, limit with an in-process bucket (`true`) or refuse with "
        "429 (`false`).",
        parse=boolean,
    )
    l1_cache_size: int = setting(
        "KEYGATE_L1_CACHE_SIZE",
        100_000,
        "Most verified tokens each gateway process keeps in memory.",
        parse=int_between(0, 10_000_000),
    )
    l1_cache_ttl_seconds: int = setting(
        "KEYGATE_L1_CACHE_TTL_SECONDS",
        10,
        "How long a gateway trusts its in-memory verdict (revocations evict sooner).",
        parse=int_between(0, 300),
    )
    session_mode: SessionMode = setting(
        "KEYGATE_SESSION_AUTHENTICATOR",
        SessionMode.PASSTHROUGH,
        "`passthrough` (forward cookies untouched), `upstream` (resolve them with "
        "KEYGATE_SESSION_CHECK_URL) or `local` (keygate's own login sessions).",
        parse=choice(SessionMode),
    )
    session_check_url: str = setting(
        "KEYGATE_SESSION_CHECK_URL",
        "",
        "For the `upstream` session authenticator: a URL that answers 200 with JSON "
        "`{userId, email, workspaceId?}` for a valid cookie, 401 otherwise.",
        default_text="(unset)",
    )
    session_cache_seconds: int = setting(
        "KEYGATE_SESSION_CACHE_SECONDS",
        5,
        "How long a session check's answer is reused (keyed by a hash of the cookie).",
        parse=int_between(0, 300),
    )
    routes_file: str = setting(
        "KEYGATE_ROUTES_FILE",
        "",
        "Optional TOML file of route rules (path prefix → upstream, auth, scope, workspace).",
        default_text="(unset)",
    )
    forward_bearer: bool = setting(
        "KEYGATE_FORWARD_BEARER",
        False,
        "Forward the client's `Authorization: Bearer` header to the upstream.",
        parse=boolean,
    )
    trusted_proxies: tuple[Network, ...] = setting(
        "KEYGATE_TRUSTED_PROXIES",
        (),
        "Comma-separated CIDRs whose `X-Forwarded-*` headers are believed.",
        parse=networks,
        default_text="(none)",
    )
    log_level: LogLevel = shared.log_level()
    access_log: bool = setting(
        "KEYGATE_ACCESS_LOG",
        True,
        "One JSON log line per answered request (at level `info`).",
        parse=boolean,
    )
    shutdown_drain_seconds: float = shared.shutdown_drain_seconds()
    public_https: bool = shared.public_https()
    identity_headers: dict[str, str] | None = setting(
        "KEYGATE_IDENTITY_HEADERS",
        None,
        "Rename injected identity headers, e.g. `user_id=X-User-Id,email=X-User-Email`.",
        parse=header_names,
        default_text="(defaults)",
    )

    @property
    def internal_secrets(self) -> InternalSecrets:
        """The internal secret, and the previous one while it rotates."""
        return InternalSecrets(self.internal_secret, self.internal_secret_previous)

    def __post_init__(self) -> None:
        if self.ops_port is not None and self.ops_port == self.port:
            raise SettingsError("KEYGATE_GATEWAY_OPS_PORT", "must differ from KEYGATE_GATEWAY_PORT")
        if self.session_mode is SessionMode.UPSTREAM and not self.session_check_url:
            raise SettingsError(
                "KEYGATE_SESSION_CHECK_URL", "required when KEYGATE_SESSION_AUTHENTICATOR=upstream"
            )
