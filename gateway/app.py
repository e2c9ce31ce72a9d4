"""The gateway's composition root: ``create_app(settings)``.

Routes under ``/_keygate/`` are keygate's own and never reach the upstream; everything else goes
through :class:`gateway.proxy.Pipeline`. Three ``cleanup_ctx`` open what the gateway needs, in
order, under the keys in :mod:`gateway.appkeys`: the clients (Redis, the HTTP pools), the
pipeline built on them, and the background tasks. Nothing connects eagerly: the gateway starts
while its dependencies are down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import get_args

import aiohttp
from aiohttp import web

from gateway.access_log import AccessLog
from gateway.appkeys import (
    ACCESS_LOG,
    HEADER_NAMES,
    HTTP,
    INTERNAL_HTTP,
    L1,
    LISTENER,
    METRICS,
    PIPELINE,
    REDIS,
    ROUTES,
    SETTINGS,
    USAGE,
)
from gateway.errors import GatewayError
from gateway.forwarded import warn_without_trusted_proxies
from gateway.introspection_client import IntrospectionClient
from gateway.metrics import GatewayMetrics
from gateway.ops import GATEWAY_APP, RESERVED, add_ops_routes, ops_listener
from gateway.pipeline.authn import (
    Authenticator,
    BearerAuthenticator,
    LocalSessionAuthenticator,
    PassthroughSessionAuthenticator,
    UpstreamSessionAuthenticator,
)
from gateway.pipeline.authz import RouteError, RouteTable
from gateway.pipeline.forward import Forwarder, upstream_session
from gateway.pipeline.limit import LocalTokenBucket, RedisTokenBucket
from gateway.pipeline.mutate import IdentityHeaderNames
from gateway.proxy import ROUTE_KEY, Pipeline
from gateway.revocations import RevocationListener
from gateway.settings import GatewaySettings, SessionMode
from gateway.token_cache import L1Cache, Lookup
from gateway.usage import UsageRecorder
from keygate_core.envconfig import SettingsError
from keygate_core.logs import request_id_var
from keygate_core.problems import http_exception_problem, internal_error, render_problem
from keygate_core.redis_connect import open_redis
from keygate_core.shared_settings import check_internal_secret

log = logging.getLogger("keygate.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place refusals become responses; also times and logs every request, on the
    public port and on the ops listener (whose application reports on the gateway's)."""
    started = time.perf_counter()
    app = request.app.get(GATEWAY_APP, request.app)
    pipeline = app[PIPELINE]
    ctx = pipeline.context(request)
    token = request_id_var.set(ctx.request_id)
    status = 500
    gone = False
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:  # keygate's own answers; relayed ones carry it already
            response.headers.setdefault("X-Request-Id", ctx.request_id)
        return response
    except asyncio.CancelledError:  # the client went away (or the gateway is stopping)
        gone = True
        raise
    except GatewayError as error:
        status = error.status
        log.info(
            "request refused",
            extra={"status": error.status, "reason": error.internal_reason, "path": request.path},
        )
        return render_problem(error, ctx.request_id, {"X-Request-Id": ctx.request_id})
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        response = http_exception_problem(exc, ctx.request_id)
        response.headers["X-Request-Id"] = ctx.request_id
        return response
    except Exception:
        # Nothing a stage raises on purpose gets here: this is a bug, logged with its request id.
        log.exception("unhandled error", extra={"path": request.path})
        response = internal_error(ctx.request_id)
        response.headers["X-Request-Id"] = ctx.request_id
        return response
    finally:
        route = request.get(ROUTE_KEY) or _reserved_route(request.path)
        metrics_ = app[METRICS]
        seconds = time.perf_counter() - started
        metrics_.labels(metrics_.request_duration, route, f"{status // 100}xx").observe(seconds)
        if not gone:  # as in the relay: no line for a request its client left
            client = ctx.client_address
            app[ACCESS_LOG].record(ctx.request_id, request.method, route, status, seconds, client)
        request_id_var.reset(token)


_RESERVED_NAMES = ("healthz", "readyz", "metrics", "auth")
_RESERVED_ROUTES = frozenset(f"{RESERVED}{name}" for name in _RESERVED_NAMES)


def _reserved_route(path: str) -> str:
    # Only known paths become label values: clients must not be able to mint new series.
    return path if path in _RESERVED_ROUTES else "unmatched"


async def forward_auth(request: web.Request) -> web.Response:
    """nginx ``auth_request`` / Traefik ForwardAuth / Envoy ext_authz (HTTP)."""
    return await request.app[PIPELINE].forward_auth(request)


async def reserved_not_found(request: web.Request) -> web.StreamResponse:
    """Unknown paths under /_keygate/ are answered here, never by the upstream."""
    raise web.HTTPNotFound()


async def proxy(request: web.Request) -> web.StreamResponse:
    """Everything else."""
    return await request.app[PIPELINE].handle(request)


async def _clients(app: web.Application) -> AsyncIterator[None]:
    """Redis and the two HTTP connection pools; nothing connects before it is first used."""
    settings = app[SETTINGS]
    timeout = settings.redis_timeout_ms / 1000
    # Each close runs, in reverse order, even when opening a later client or an earlier close
    # failed: a failed startup or teardown leaks nothing that was already open.
    async with contextlib.AsyncExitStack() as opened:
        # A bounded pool: a burst of requests queues for a connection instead of opening
        # hundreds at once (which is what makes Redis look slow under load). from_pool: closing
        # the client closes the pool and its connections.
        app[REDIS] = open_redis(
            settings.redis_url, timeout=timeout, connect_timeout=timeout, max_connections=64
        )
        opened.push_async_callback(app[REDIS].aclose)
        app[HTTP] = upstream_session(settings.upstream_max_connections)
        opened.push_async_callback(app[HTTP].close)
        # keygate's own calls get their own pool, so upstream load cannot starve authentication.
        app[INTERNAL_HTTP] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=60),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        opened.push_async_callback(app[INTERNAL_HTTP].close)
        yield


async def _pipeline(app: web.Application) -> AsyncIterator[None]:
    """The stages wired to the clients: L1 cache, authenticators, limiter, usage counts.

    Opens nothing of its own; the clients it uses close in :func:`_clients`.
    """
    settings = app[SETTINGS]
    warn_without_trusted_proxies(settings.host, settings.trusted_proxies)
    app[L1] = L1Cache(settings.l1_cache_size, settings.l1_cache_ttl_seconds)
    limiter = RedisTokenBucket(
        app[REDIS],
        fail_open=settings.rate_limit_fail_open,
        fallback=LocalTokenBucket(),
        on_round_trip=app[METRICS].ratelimit_round_trips.inc,
    )
    app[USAGE] = UsageRecorder(app[REDIS])
    app[PIPELINE] = Pipeline(
        settings=settings,
        routes=app[ROUTES],
        chain=_authenticators(app),
        limiter=limiter,
        forwarder=Forwarder.from_settings(app[HTTP], settings),
        header_names=app[HEADER_NAMES],
        metrics=app[METRICS],
        usage=app[USAGE],
    )
    yield


def _authenticators(app: web.Application) -> list[Authenticator]:
    """The chain: bearer first, then the configured session authenticator, then passthrough."""
    settings = app[SETTINGS]
    metrics_ = app[METRICS]
    client = IntrospectionClient(
        app[INTERNAL_HTTP],
        settings.introspector_url,
        settings.internal_secret,
        settings.introspector_timeout_ms / 1000,
    )
    lookups = {result: metrics_.labels(metrics_.l1_lookups, result) for result in get_args(Lookup)}
    chain: list[Authenticator] = [
        BearerAuthenticator(
            client, app[L1], on_lookup=lambda result: metrics_.batch.count(lookups[result])
        )
    ]
    if settings.session_mode is SessionMode.UPSTREAM:
        check = (settings.session_check_url, settings.session_cache_seconds)
        chain.append(UpstreamSessionAuthenticator(app[INTERNAL_HTTP], *check))
    if settings.session_mode is SessionMode.LOCAL:
        forged = metrics_.labels(metrics_.auth_decisions, "session", "forged_session").inc
        chain.append(
            LocalSessionAuthenticator(
                app[REDIS], settings.internal_secrets, forged, https=settings.public_https
            )
        )
    chain.append(PassthroughSessionAuthenticator())
    return chain


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The revocation listener, the usage flusher and (with several workers) the L1 gauge,
    stopped in reverse order even when a step of starting or stopping them fails; the last
    metrics batch handed to prometheus_client after them."""
    settings = app[SETTINGS]
    timeout = settings.redis_timeout_ms / 1000
    async with contextlib.AsyncExitStack() as running:
        running.callback(app[METRICS].batch.flush)
        # The revocation listener blocks on reads, so it gets its own connection pool.
        listener_redis = open_redis(settings.redis_url, timeout=None, connect_timeout=timeout)
        running.push_async_callback(listener_redis.aclose)
        listener = RevocationListener(
            listener_redis,
            app[L1],
            dead_after=max(timeout, 0.5),
            on_revoked=app[PIPELINE].forwarder.registry.revoked,
        )
        app[LISTENER] = listener
        running.push_async_callback(listener.stop, asyncio.create_task(listener.run()))
        running.push_async_callback(_cancel, asyncio.create_task(app[USAGE].run()))
        gauges = asyncio.create_task(app[METRICS].track_l1_entries(app[L1]))
        running.push_async_callback(_cancel, gauges)
        yield


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and give it two seconds to finish (the usage flusher's last flush)."""
    task.cancel()
    await asyncio.wait({task}, timeout=2.0)


def create_app(settings: GatewaySettings) -> web.Application:
    """The gateway application for ``settings``."""
    check_internal_secret(settings.internal_secret, settings.internal_secret_previous)
    app = web.Application(middlewares=[render_errors])
    app[SETTINGS] = settings
    app[METRICS] = GatewayMetrics()
    app[ACCESS_LOG] = AccessLog(enabled=settings.access_log)
    try:
        app[ROUTES] = RouteTable.load(settings.routes_file)
    except RouteError as exc:
        raise SettingsError("KEYGATE_ROUTES_FILE", str(exc)) from None
    try:
        app[HEADER_NAMES] = IdentityHeaderNames(**(settings.identity_headers or {}))
    except ValueError as exc:
        raise SettingsError("KEYGATE_IDENTITY_HEADERS", str(exc)) from None
    app.cleanup_ctx.extend((_clients, _pipeline, _background, ops_listener))
    add_ops_routes(app)
    app.router.add_route("*", f"{RESERVED}auth", forward_auth)
    # The admin UI's login pages live under the reserved prefix but are served by the UI.
    for path in ("/_keygate/login", "/_keygate/logout", "/_keygate/static/{tail:.*}"):
        app.router.add_route("*", path, proxy)
    app.router.add_route("*", "/_keygate/{tail:.*}", reserved_not_found)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app
