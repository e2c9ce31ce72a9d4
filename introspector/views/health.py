"""Health endpoints: ``/healthz`` (the process answers) and ``/readyz`` (its dependencies do)."""

from __future__ import annotations

from aiohttp import web

from introspector.appkeys import METRICS, POOL, REDIS
from introspector.db import DATABASE_UNAVAILABLE
from keygate_core.probes import draining_response, readiness_response, redis_check
from keygate_core.serving import draining
from keygate_core.version import VERSION


async def healthz(request: web.Request) -> web.Response:
    """Shallow: 200 while the process can serve HTTP, with the version it runs."""
    return web.json_response({"status": "ok", "version": VERSION})


async def readyz(request: web.Request) -> web.Response:
    """Deep: 200 when Postgres and Redis both answer, else 503 naming what is down."""
    if draining(request.app):
        return draining_response()
    checks: dict[str, str] = {}
    try:
        async with request.app[POOL].acquire() as conn:
            await conn.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except DATABASE_UNAVAILABLE:
        checks["postgres"] = "unavailable"
    checks["redis"] = await redis_check(request.app[REDIS])
    return readiness_response(checks)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of the introspector's metrics."""
    return request.app[METRICS].render(request)
