"""The introspector's composition root: ``create_app(settings)`` wires everything together.

Resources (Postgres pool, Redis client, argon2 pool, background tasks) open and close in
``cleanup_ctx`` under typed keys from :mod:`introspector.appkeys`. Nothing here connects eagerly:
the process starts while Postgres or Redis is down and becomes ready when they return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from introspector.appkeys import (
    ANNOUNCER,
    ATTEMPTS,
    CREATION_GATE,
    CREATION_LIMITS,
    HASHER,
    INTROSPECTOR,
    LAST_USED,
    METRICS,
    POOL,
    REDIS,
    SESSIONS,
    SETTINGS,
)
from introspector.attempts import AttemptLimits, FailedAttempts
from introspector.cache import TokenCache, derive_cache_mac
from introspector.creation_limits import CreationGate, CreationLimits
from introspector.db import DATABASE_UNAVAILABLE, create_pool
from introspector.device_cookies import DeviceCookies, device_cookie_keys
from introspector.errors import InternalSecretRefused, KeygateError, Unavailable
from introspector.hashing import SecretHasher
from introspector.introspection import TokenIntrospector
from introspector.last_used import LastUsedRecorder
from introspector.metrics import IntrospectorMetrics
from introspector.outbox_wakeup import OutboxWakeup
from introspector.revocation import RevocationAnnouncer
from introspector.session_index import SessionIndex
from introspector.sessions import SessionStore
from introspector.settings import IntrospectorSettings
from introspector.views import (
    api_tokens,
    audit_events,
    health,
    introspect,
    sessions,
    usage,
    users,
    whoami,
)
from keygate_core import headers
from keygate_core.background import stop_tasks
from keygate_core.internal_secret import InternalSecrets
from keygate_core.logs import request_id_var
from keygate_core.middlewares import internal_secret_guard, request_context
from keygate_core.problems import http_exception_problem, internal_error, render_problem
from keygate_core.redis_connect import open_redis
from keygate_core.session_record import session_record_keys
from keygate_core.shared_settings import check_internal_secret

log = logging.getLogger("keygate.introspector")

API = headers.API_PREFIX
#: Paths that carry no data and answer without the internal secret (probes and scrapers).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: Management bodies are tiny; a bigger (even chunked) body is refused before it is read.
MAX_BODY_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _observe(request: web.Request, route: str, status: int, seconds: float) -> None:
    request.app[METRICS].http_duration.labels(route, f"{status // 100}xx").observe(seconds)


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place errors become responses (problem+json)."""
    request_id = request_id_var.get()
    try:
        return await handler(request)
    except KeygateError as error:
        return render_problem(error, request_id)
    except DATABASE_UNAVAILABLE as exc:
        log.warning("postgres unavailable", extra={"error": type(exc).__name__})
        unavailable = Unavailable("the token store is temporarily unavailable; retry shortly")
        return render_problem(unavailable, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_exception_problem(exc, request_id)
    except Exception:
        log.exception("unhandled error")
        return internal_error(request_id)


async def _refuse_without_secret(request: web.Request) -> web.StreamResponse:
    log.warning("request without an accepted internal secret refused", extra={"path": request.path})
    raise InternalSecretRefused(
        f"the introspector is internal; callers must send {headers.INTERNAL_SECRET}"
    )


async def _storage(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[POOL] = await create_pool(settings)
    timeout = settings.redis_timeout_ms / 1000
    app[REDIS] = open_redis(settings.redis_url, timeout=timeout, connect_timeout=timeout)
    app[HASHER] = SecretHasher.from_settings(settings)
    yield
    app[HASHER].close()
    await app[REDIS].aclose()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(app[POOL].close(), timeout=5)


def _failed_attempts(app: web.Application) -> FailedAttempts:
    settings = app[SETTINGS]
    return FailedAttempts(
        app[REDIS],
        AttemptLimits(
            per_token=settings.failed_verify_limit_per_token,
            per_address=settings.failed_verify_limit_per_address,
            login_per_account_address=settings.failed_login_limit_per_account_address,
            login_per_account=settings.failed_login_limit_per_account,
            logins_per_address=settings.login_limit_per_address,
            login_per_device=settings.failed_login_limit_per_device,
            ipv6_prefix=settings.client_ipv6_prefix,
        ),
    )


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    metrics = app[METRICS]
    cache = TokenCache(
        app[REDIS],
        derive_cache_mac(settings.internal_secret),
        settings.cache_ttl_seconds,
        settings.negative_cache_ttl_seconds,
        on_rejected=metrics.cache_rejected.inc,
    )
    app[ATTEMPTS] = _failed_attempts(app)
    app[CREATION_LIMITS] = CreationLimits(
        app[REDIS],
        per_user=settings.token_create_limit_per_user,
        per_address=settings.token_create_limit_per_address,
        ipv6_prefix=settings.client_ipv6_prefix,
    )
    # Half the pool (at least one connection) at most serves creates; the rest stays free for
    # introspection, whoami and revocations however many creates arrive.
    app[CREATION_GATE] = CreationGate(
        max(1, settings.database_pool_size // 2), settings.database_acquire_timeout_ms / 1000
    )
    app[LAST_USED] = LastUsedRecorder(app[POOL])
    app[ANNOUNCER] = RevocationAnnouncer(
        app[POOL],
        app[REDIS],
        cache,
        SessionIndex(app[REDIS], settings.session_ttl_seconds),
        on_deferred=metrics.revocations_pending.inc,
    )
    wakeup = OutboxWakeup(settings, app[ANNOUNCER].wake)
    secrets = InternalSecrets(settings.internal_secret, settings.internal_secret_previous)
    app[SESSIONS] = SessionStore(
        app[POOL],
        app[REDIS],
        app[HASHER],
        app[ATTEMPTS],
        settings.session_ttl_seconds,
        session_record_keys(secrets)[0],
        DeviceCookies(device_cookie_keys(secrets), settings.device_cookie_max_age_seconds),
    )
    app[INTROSPECTOR] = TokenIntrospector(
        app[POOL], cache, app[ATTEMPTS], app[HASHER], app[LAST_USED], metrics
    )
    tasks = [
        asyncio.create_task(app[LAST_USED].run(settings.last_used_flush_seconds)),
        asyncio.create_task(app[ANNOUNCER].run(settings.outbox_poll_seconds, wakeup)),
    ]
    yield
    await stop_tasks(tasks, grace_seconds=5)
    # Writes that were only noted in memory are not lost on a clean shutdown.
    await app[LAST_USED].flush()


def create_app(settings: IntrospectorSettings) -> web.Application:
    """The introspector application for ``settings``."""
    # The guard's precondition, not settings validation: with an empty secret the guard below
    # lets every caller in (and a short one is guessable), so no caller can build an open app.
    secrets = check_internal_secret(settings.internal_secret, settings.internal_secret_previous)
    app = web.Application(
        middlewares=[
            request_context(log, observe=_observe, echo_request_id=True),
            render_errors,
            internal_secret_guard(
                secrets,
                is_open=OPEN_PATHS.__contains__,
                refuse=_refuse_without_secret,
            ),
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[METRICS] = IntrospectorMetrics()
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_services)
    app.router.add_post("/introspect", introspect.introspect)
    app.router.add_post(f"{API}/api-tokens", api_tokens.create_token)
    app.router.add_get(f"{API}/api-tokens", api_tokens.list_tokens)
    app.router.add_delete(f"{API}/api-tokens/{{token_id}}", api_tokens.revoke_token)
    app.router.add_get(f"{API}/api-tokens/{{token_id}}/usage", usage.token_usage)
    app.router.add_get(f"{API}/whoami", whoami.whoami)
    app.router.add_get(f"{API}/audit-events", audit_events.list_audit_events)
    app.router.add_get(f"{API}/users", users.list_users)
    app.router.add_post(f"{API}/users", users.create_user)
    app.router.add_get(f"{API}/users/{{user_id}}", users.get_user)
    app.router.add_put(f"{API}/users/{{user_id}}/password", users.set_password)
    app.router.add_post(f"{API}/users/{{user_id}}/deactivate", users.deactivate)
    app.router.add_post(f"{API}/users/{{user_id}}/reactivate", users.reactivate)
    app.router.add_post("/sessions", sessions.create_session)
    app.router.add_post("/sessions/revoke", sessions.revoke_session)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    return app
