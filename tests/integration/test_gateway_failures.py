"""The gateway's own failures: startup and shutdown close every client they opened.

Every trigger is a real condition (an operator's odd setting, a misbehaving upstream), never a
mock: the upstreams are real servers, Redis is the test's real server, closed ports are real.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.appkeys import HTTP, INTERNAL_HTTP, LISTENER
from gateway.settings import GatewaySettings
from keygate_cli.settings import load_settings
from tests.integration.conftest import eventually, gateway_env
from tests.integration.upstream_app import create_upstream


def _closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _settings(redis_url: str, upstream_url: str) -> GatewaySettings:
    """A gateway on the test Redis whose introspector is a closed port (never asked here)."""
    introspector_url = f"http://127.0.0.1:{_closed_port()}"
    return load_settings(
        GatewaySettings,
        gateway_env(
            introspector_url, upstream_url, redis_url, KEYGATE_SESSION_AUTHENTICATOR="local"
        ),
    )


async def test_startup_failing_halfway_closes_the_clients_it_opened(redis_url: str) -> None:
    """A startup that fails after the HTTP pools opened closes them in the runner's cleanup."""
    # A real operator mistake the settings accept (only the scheme is checked): redis-py takes
    # the URL's query as client options, and the limiter's script cannot be encoded in a codec
    # that does not exist. The Redis pool and both HTTP sessions are open by then.
    settings = _settings(
        f"{redis_url}?encoding=no-such-codec", f"http://127.0.0.1:{_closed_port()}"
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    try:
        with pytest.raises(LookupError, match="no-such-codec"):
            await runner.setup()
    finally:
        await runner.cleanup()
    assert app[HTTP].closed and app[INTERNAL_HTTP].closed
    assert LISTENER not in app  # the background tasks never started


async def _gateway_connections(redis: aioredis.Redis, before: set[str]) -> set[str]:
    """Ids of Redis clients connected now that were not connected ``before`` (nor ``redis``)."""
    own = str(await redis.client_id())
    return {str(c["id"]) for c in await redis.client_list()} - before - {own}


async def test_stopping_closes_every_redis_connection(
    redis_client: aioredis.Redis, redis_url: str, aiohttp_server: Any
) -> None:
    """After a gateway stops, none of its Redis connections (pool or listener) is left open."""
    upstream = await aiohttp_server(create_upstream()[0])
    app = create_app(_settings(redis_url, str(upstream.make_url("")).rstrip("/")))
    before = {str(c["id"]) for c in await redis_client.client_list()}

    async def both_connected() -> bool:
        return len(await _gateway_connections(redis_client, before)) >= 2

    async def all_closed() -> bool:
        return not await _gateway_connections(redis_client, before)

    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        # In `local` mode a session cookie is looked up in Redis through the gateway's pool;
        # the revocation listener connects on its own.
        response = await client.get("/x", cookies={"kg_session": "no-such-session"})
        assert response.status == 200
        assert await eventually(both_connected), "the pool and the listener never connected"
    finally:
        await client.close()
    assert await eventually(all_closed), await _gateway_connections(redis_client, before)
