"""The gateway's operational endpoints: ``healthz``, ``readyz`` and ``metrics``.

They are served on the public port unless ``KEYGATE_GATEWAY_OPS_PORT`` is set; then ``readyz``
and ``metrics`` move to a listener of their own on ``KEYGATE_GATEWAY_OPS_HOST`` (the public port
answers 404 for them) and only ``healthz`` stays on both. Metrics tell an attacker whether an
attack works (failure reasons, wrong-secret counts), and ``readyz`` reaches the introspector and
Redis, so neither belongs on the port every client can reach.

With several workers each one listens on the ops port too (``SO_REUSEPORT``, as on the public
port); whichever answers a scrape reports the whole group (``keygate_core.worker_metrics``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway.appkeys import INTERNAL_HTTP, L1, METRICS, REDIS, SETTINGS
from keygate_core.probes import draining_response, readiness_response, redis_check
from keygate_core.serving import draining
from keygate_core.version import VERSION

RESERVED = "/_keygate/"

#: How long one deep check answers every ``readyz`` call (so it cannot amplify traffic).
READINESS_TTL_SECONDS = 1.0


class Readiness:
    """The deep check's last answer, reused for ``ttl`` seconds; callers that arrive while a
    check runs wait for it instead of starting their own."""

    def __init__(self, ttl: float = READINESS_TTL_SECONDS) -> None:
        self._ttl = ttl
        self._checked_at = -math.inf
        self._checks: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def checks(self, app: web.Application) -> dict[str, str]:
        """The introspector's and Redis' state, at most ``ttl`` seconds old."""
        async with self._lock:
            if time.monotonic() - self._checked_at >= self._ttl:
                self._checks = await _check(app)
                self._checked_at = time.monotonic()
            return self._checks


READINESS = web.AppKey("readiness", Readiness)
#: In the ops listener's application: the gateway application it reports on.
GATEWAY_APP = web.AppKey("gateway_app", web.Application)


async def _check(app: web.Application) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        async with app[INTERNAL_HTTP].get(
            app[SETTINGS].introspector_url.rstrip("/") + "/healthz",
            timeout=aiohttp.ClientTimeout(total=1),
        ) as response:
            checks["introspector"] = "ok" if response.status == 200 else "unavailable"
    except (aiohttp.ClientError, TimeoutError, OSError):
        checks["introspector"] = "unavailable"
    checks["redis"] = await redis_check(app[REDIS])
    return checks


def _gateway(request: web.Request) -> web.Application:
    return request.app.get(GATEWAY_APP, request.app)


async def healthz(request: web.Request) -> web.Response:
    """Shallow: the process answers, with the version it runs."""
    return web.json_response({"status": "ok", "version": VERSION})


async def readyz(request: web.Request) -> web.Response:
    """Deep: the introspector and Redis both answer (503 once the gateway is stopping)."""
    app = _gateway(request)
    if draining(app):
        return draining_response()
    return readiness_response(await app[READINESS].checks(app))


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    app = _gateway(request)
    app[METRICS].l1_entries.set(len(app[L1]))
    return await app[METRICS].render(request)


def add_ops_routes(app: web.Application) -> None:
    """``healthz`` always; ``readyz`` and ``metrics`` unless they have a listener of their own."""
    app[READINESS] = Readiness()
    app.router.add_get(f"{RESERVED}healthz", healthz)
    if app[SETTINGS].ops_port is None:
        app.router.add_get(f"{RESERVED}readyz", readyz)
        app.router.add_get(f"{RESERVED}metrics", metrics)


async def ops_listener(app: web.Application) -> AsyncIterator[None]:
    """The ops listener on KEYGATE_GATEWAY_OPS_HOST:PORT while the gateway runs (when set)."""
    settings = app[SETTINGS]
    if settings.ops_port is None:
        yield
        return
    # The gateway's own middleware: request ids, the duration metric and the access log, as for
    # the same endpoints on the public port.
    ops = web.Application(middlewares=app.middlewares)
    ops[GATEWAY_APP] = app
    for name, handler in (("healthz", healthz), ("readyz", readyz), ("metrics", metrics)):
        ops.router.add_get(f"{RESERVED}{name}", handler)
    runner = web.AppRunner(ops, access_log=None)
    await runner.setup()
    try:
        reuse_port = True if settings.workers > 1 else None
        site = web.TCPSite(runner, settings.ops_host, settings.ops_port, reuse_port=reuse_port)
        await site.start()
        yield
    finally:
        await runner.cleanup()
