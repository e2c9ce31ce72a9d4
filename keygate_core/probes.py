"""Readiness and metrics replies shared by keygate's services (pure aiohttp, no storage)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from redis.exceptions import RedisError


async def redis_check(redis: aioredis.Redis) -> str:
    """``"ok"`` when Redis answers a PING within a second, else ``"unavailable"``."""
    try:
        await asyncio.wait_for(redis.ping(), timeout=1)
    except (RedisError, OSError, TimeoutError):
        return "unavailable"
    return "ok"


def readiness_response(checks: dict[str, str]) -> web.Response:
    """200 when every check is ``ok``, else 503 with ``Retry-After``; the checks in the body."""
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
        headers={} if ready else {"Retry-After": "1"},
    )


def draining_response() -> web.Response:
    """503 from a service that received SIGTERM and is finishing its work."""
    return web.json_response(
        {"status": "draining", "checks": {}}, status=503, headers={"Retry-After": "1"}
    )


def metrics_response(registry: CollectorRegistry, request: web.Request) -> web.Response:
    """``registry`` in the format the scraper asks for (OpenMetrics or Prometheus text)."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = web.Response(body=encoder(registry))
    response.headers["Content-Type"] = content_type
    return response
