"""The introspector's settings (and the operator CLI's, which shares its storage)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from keygate_core import shared_settings as shared
from keygate_core.envconfig import (
    SettingsError,
    boolean,
    choice,
    float_between,
    int_between,
    non_empty,
    setting,
    url,
)
from keygate_core.shared_settings import LogLevel


class Edition(enum.Enum):
    """Which scopes tokens may have: community sees PERSONAL only."""

    COMMUNITY = "community"
    ENTERPRISE = "enterprise"


@dataclass(frozen=True)
class IntrospectorSettings:
    """Everything the introspector and the operator CLI read from the environment."""

    database_url: str = setting(
        "KEYGATE_DATABASE_URL",
        "postgresql://127.0.0.1:5432/keygate",
        "Postgres connection URL (asyncpg/libpq syntax); several hosts with "
        "`target_session_attrs=read-write` follow a failover.",
        parse=url("postgresql", "postgres"),
        secret=True,
    )
    redis_url: str = shared.redis_url()
    edition: Edition = setting(
        "KEYGATE_EDITION",
        Edition.COMMUNITY,
        "`community` (PERSONAL tokens only) or `enterprise` (adds WORKSPACE and ORGANIZATION).",
        parse=choice(Edition),
    )
    argon2_time_cost: int = setting(
        "KEYGATE_ARGON2_TIME_COST",
        2,
        "argon2id iterations (t). OWASP minimum is 2 with 19 MiB.",
        parse=int_between(1, 64),
    )
    argon2_memory_kib: int = setting(
        "KEYGATE_ARGON2_MEMORY_KIB",
        19456,
        "argon2id memory in KiB (m). At least 19456 (19 MiB) outside tests.",
        parse=int_between(8, 4 * 1024 * 1024),
    )
    argon2_parallelism: int = setting(
        "KEYGATE_ARGON2_PARALLELISM",
        1,
        "argon2id lanes (p).",
        parse=int_between(1, 64),
    )
    argon2_max_concurrency: int = setting(
        "KEYGATE_ARGON2_MAX_CONCURRENCY",
        2,
        "How many argon2 verifications may run at once (off the event loop); the rest queue.",
        parse=int_between(1, 256),
    )
    argon2_hash_concurrency: int = setting(
        "KEYGATE_ARGON2_HASH_CONCURRENCY",
        1,
        "How many argon2 hashes (new tokens, passwords) may run at once. A budget apart from "
        "verification's, so a burst of creates never delays introspection.",
        parse=int_between(1, 256),
    )
    log_level: LogLevel = shared.log_level()
    shutdown_drain_seconds: float = shared.shutdown_drain_seconds()
    host: str = setting(
        "KEYGATE_INTROSPECTOR_HOST",
        "127.0.0.1",
        "Address the introspector listens on (`0.0.0.0` in containers).",
        parse=non_empty,
    )
    port: int = setting(
        "KEYGATE_INTROSPECTOR_PORT",
        8081,
        "TCP port of the introspector.",
        parse=int_between(0, 65535),
    )
    internal_secret: str = shared.internal_secret()
    internal_secret_previous: str = shared.internal_secret_previous()
    link_users_by_email: bool = setting(
        "KEYGATE_LINK_USERS_BY_EMAIL",
        False,
        "`upstream` sessions: link a person of the app to an existing keygate user with the same "
        "e-mail when the session check says `emailVerified: true`. Never links admins or people "
        "with a local password (use `keygate users link`).",
        parse=boolean,
    )
    cache_ttl_seconds: int = setting(
        "KEYGATE_CACHE_TTL_SECONDS",
        60,
        "How long a verified token stays in the Redis cache (never past its expiry).",
        parse=int_between(1, 3600),
    )
    negative_cache_ttl_seconds: int = setting(
        "KEYGATE_NEGATIVE_CACHE_TTL_SECONDS",
        10,
        "How long an unknown token id is remembered as unknown.",
        parse=int_between(1, 600),
    )
    redis_timeout_ms: int = shared.redis_timeout_ms()
    database_timeout_ms: int = setting(
        "KEYGATE_DATABASE_TIMEOUT_MS",
        2000,
        "Connect and query timeout for Postgres; past it requests that need it answer 503.",
        parse=int_between(50, 120000),
    )
    database_pool_size: int = setting(
        "KEYGATE_DATABASE_POOL_SIZE",
        10,
        "Most Postgres connections one introspector process opens.",
        parse=int_between(1, 200),
    )
    database_acquire_timeout_ms: int = setting(
        "KEYGATE_DATABASE_ACQUIRE_TIMEOUT_MS",
        1500,
        "How long a request waits for a free pool connection before it answers 503 with "
        "`Retry-After` (nothing half-written). Keep it below the gateway's "
        "`KEYGATE_INTROSPECTOR_TIMEOUT_MS`.",
        parse=int_between(10, 120000),
    )
    max_tokens_per_user: int = setting(
        "KEYGATE_MAX_TOKENS_PER_USER",
        100,
        "Most live (neither revoked nor expired) tokens one person may hold; one more is 409 "
        "`too_many_tokens`.",
        parse=int_between(1, 1_000_000),
    )
    token_create_limit_per_user: int = setting(
        "KEYGATE_TOKEN_CREATE_LIMIT_PER_USER",
        30,
        "Tokens one person may create per minute through the API; more get 429 with `Retry-After`.",
        parse=int_between(1, 100000),
    )
    token_create_limit_per_address: int = setting(
        "KEYGATE_TOKEN_CREATE_LIMIT_PER_ADDRESS",
        120,
        "Tokens that may be created per minute from one client address (IPv6: per /64) through "
        "the API; more get 429 with `Retry-After`.",
        parse=int_between(1, 100000),
    )
    failed_verify_limit_per_token: int = setting(
        "KEYGATE_FAILED_VERIFY_LIMIT_PER_TOKEN",
        10,
        "Wrong-secret argon2 verifications per token id per minute; past it, tokens without a "
        "current fast verifier get 429 (a secret the verifier recognises always passes).",
        parse=int_between(1, 100000),
    )
    failed_verify_limit_per_address: int = setting(
        "KEYGATE_FAILED_VERIFY_LIMIT_PER_ADDRESS",
        30,
        "Wrong-secret argon2 verifications per client address per minute; past it, further "
        "argon2 verifications from it get 429 (a secret the verifier recognises always passes).",
        parse=int_between(1, 100000),
    )
    failed_login_limit_per_account_address: int = setting(
        "KEYGATE_FAILED_LOGIN_LIMIT_PER_ACCOUNT_ADDRESS",
        10,
        "Wrong passwords for one e-mail from one client address per minute before sign-ins "
        "for it from there get 429.",
        parse=int_between(1, 100000),
    )
    failed_login_limit_per_account: int = setting(
        "KEYGATE_FAILED_LOGIN_LIMIT_PER_ACCOUNT",
        100,
        "Wrong passwords for one e-mail from all addresses per minute (an argon2 budget) before "
        "sign-ins for it get 429 from everywhere.",
        parse=int_between(1, 1000000),
    )
    failed_login_limit_per_device: int = setting(
        "KEYGATE_FAILED_LOGIN_LIMIT_PER_DEVICE",
        10,
        "Wrong passwords per minute given with one device token (the `kg_device` cookie of a "
        "browser that signed in before); past it the token counts as none. Such sign-ins are "
        "exempt from the per-e-mail and per-(e-mail, address) limits.",
        parse=int_between(1, 100000),
    )
    device_cookie_max_age_seconds: int = setting(
        "KEYGATE_DEVICE_COOKIE_MAX_AGE_SECONDS",
        31536000,
        "How long a device token (the `kg_device` cookie, issued at every sign-in) is accepted.",
        parse=int_between(60, 315360000),
    )
    login_limit_per_address: int = setting(
        "KEYGATE_LOGIN_LIMIT_PER_ADDRESS",
        30,
        "Sign-in attempts, right or wrong, per client address per minute (each costs argon2).",
        parse=int_between(1, 100000),
    )
    client_ipv6_prefix: int = setting(
        "KEYGATE_CLIENT_IPV6_PREFIX",
        64,
        "Prefix length by which per-address counters group IPv6 clients (one client usually "
        "holds a whole /64); IPv4-mapped addresses count as their IPv4 address.",
        parse=int_between(32, 128),
    )
    last_used_flush_seconds: float = setting(
        "KEYGATE_LAST_USED_FLUSH_SECONDS",
        5.0,
        "How often pending `last_used_at` updates are written, in one statement.",
        parse=float_between(0.05, 3600),
    )
    outbox_poll_seconds: float = setting(
        "KEYGATE_OUTBOX_POLL_SECONDS",
        1.0,
        "How often undelivered revocations are retried (e.g. after a Redis outage).",
        parse=float_between(0.05, 60),
    )
    session_ttl_seconds: int = shared.session_ttl_seconds()
    allow_weak_argon2: bool = setting(
        "KEYGATE_ALLOW_WEAK_ARGON2",
        False,
        "Permit argon2 parameters below the OWASP minimum (tests and local demos only).",
        parse=boolean,
    )

    def __post_init__(self) -> None:
        # Cross-field rule: weak hashing must be asked for explicitly, never reached by accident.
        if not self.allow_weak_argon2:
            if self.argon2_memory_kib < 19456:
                raise SettingsError(
                    "KEYGATE_ARGON2_MEMORY_KIB",
                    "below the OWASP minimum of 19456 KiB (set KEYGATE_ALLOW_WEAK_ARGON2=true "
                    "only for tests)",
                )
            if self.argon2_time_cost < 2:
                raise SettingsError(
                    "KEYGATE_ARGON2_TIME_COST",
                    "below the OWASP minimum of 2 (set KEYGATE_ALLOW_WEAK_ARGON2=true only "
                    "for tests)",
                )
