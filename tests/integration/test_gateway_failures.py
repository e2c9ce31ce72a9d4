"""The gateway's own failures: an unexpected exception is a problem+json 500 with its request id
and a log line, and startup and shutdown close every client they opened.

Every trigger is a real condition (a misbehaving upstream, an operator's odd setting), never a
mock: the upstreams are real servers, Redis is the test's real server, closed ports are real.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.appkeys import HTTP, INTERNAL_HTTP, LISTENER
from gateway.settings import GatewaySettings
from keygate_cli.settings import load_settings
from keygate_core.logs import JsonFormatter
from tests.harness.polling import eventually
from tests.harness.stack import StartStack, gateway_env
from tests.harness.upstream import create_upstream

# Upstream answers whose head carries a control character in a header value, framed both ways.
BROKEN_RESPONSES = {
    "length": b"HTTP/1.1 200 OK\r\nX-Odd: a\x01b\r\nContent-Length: 2\r\n\r\nok",
    "chunked": b"HTTP/1.1 200 OK\r\nX-Odd: a\x01b\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nok\r\n0\r\n\r\n",
}


def _closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(params=sorted(BROKEN_RESPONSES))
async def broken_upstream(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A real HTTP/1.1 server that answers every request with one of
    :data:`BROKEN_RESPONSES`."""
    broken = BROKEN_RESPONSES[request.param]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(broken)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


class _JsonLines(logging.Handler):
    """Keeps each record as the JSON line the gateway would write to stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def gateway_log() -> Iterator[_JsonLines]:
    """The gateway's log lines during the test, formatted as in production."""
    handler = _JsonLines()
    logger = logging.getLogger("keygate.gateway")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


async def test_unexpected_exception_is_a_problem_json_500(
    start_stack: StartStack, tmp_path: Path, gateway_log: _JsonLines
) -> None:
    """An exception no stage expects becomes a 500 internal_error problem with the request id."""
    # The routes file accepts any http(s) URL; opening a connection to this port raises
    # OverflowError, which nothing in the data path expects.
    path = "/odd/x"
    routes = tmp_path / "routes.toml"
    routes.write_text(
        '[[route]]\nprefix = "/odd/"\nupstream = "http://127.0.0.1:99999"\n', encoding="utf-8"
    )
    # The request id is a trusted proxy's to choose (the test client is one here).
    stack = await start_stack(
        KEYGATE_ROUTES_FILE=str(routes), KEYGATE_TRUSTED_PROXIES="127.0.0.1/32"
    )

    response = await stack.gateway.get(path, headers={"X-Request-Id": "req-500"})

    assert response.status == 500
    assert response.content_type == "application/problem+json"
    assert response.headers["X-Request-Id"] == "req-500"
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["reason"] == "internal_error" and body["status"] == 500
    assert body["requestId"] == "req-500"
    (line,) = [entry for entry in gateway_log.lines if entry["message"] == "unhandled error"]
    assert line["level"] == "error" and line["request_id"] == "req-500"
    assert line["path"] == path and "Traceback" in line["exception"]
    # The connection is still in step: the next request on it gets its own answer.
    assert (await stack.gateway.get("/x")).status == 200


async def test_an_upstream_head_that_is_not_http_is_a_problem_json_502(
    start_stack: StartStack, broken_upstream: str, tmp_path: Path
) -> None:
    """An upstream answer llhttp refuses (a control character in a header value) is the
    upstream's fault: 502, with nothing of it passed on, and the client connection in step."""
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f'[[route]]\nprefix = "/broken/"\nupstream = "{broken_upstream}"\n', encoding="utf-8"
    )
    stack = await start_stack(
        KEYGATE_ROUTES_FILE=str(routes), KEYGATE_TRUSTED_PROXIES="127.0.0.1/32"
    )

    response = await stack.gateway.get("/broken/x", headers={"X-Request-Id": "req-502"})

    assert response.status == 502
    assert response.content_type == "application/problem+json"
    assert "X-Odd" not in response.headers
    body = await response.json()
    assert body["reason"] == "upstream_unreachable" and body["requestId"] == "req-502"
    assert (await stack.gateway.get("/x")).status == 200


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
