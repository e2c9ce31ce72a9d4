"""The connection limits every keygate service's aiohttp server has (the introspector's, the
admin UI's, and the gateway's for what the relay hands over), on a real socket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from keygate_core.http_guard import KEEPALIVE_SECONDS, MAX_HEAD_BYTES, GuardedSite
from keygate_core.serving import tcp_site
from tests.reliability.rawhttp import raw_connection, request_bytes

HOST = ("Host", "service.test")


async def _ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="ok")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A service answering ``ok`` behind a site with one-second head and keep-alive limits."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, head_seconds=1, keepalive_seconds=1)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None)
    assert sockets
    yield sockets[0].getsockname()[1]
    await runner.cleanup()


async def test_services_serve_with_the_limits() -> None:
    """``serving.tcp_site`` (every service's default site) is the guarded one, keep-alive 75 s."""
    runner = web.AppRunner(web.Application())
    await runner.setup()
    try:
        site = tcp_site(runner, "127.0.0.1", 0, False)
        assert isinstance(site, GuardedSite)
        assert site._keepalive == KEEPALIVE_SECONDS == 75
    finally:
        await runner.cleanup()


async def test_unfinished_head_is_closed(port: int) -> None:
    """Half a request head and then nothing: the connection is closed."""
    async with raw_connection(port) as conn:
        await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert await conn.closed_by_server(quiet=3.0)


async def test_unfinished_head_after_a_request_is_closed(port: int) -> None:
    """The same on a kept-alive connection after a request with a body."""
    async with raw_connection(port) as conn:
        await conn.send(request_bytes("POST", "/", [HOST, ("Content-Length", "2")], b"hi"))
        assert (await conn.response("POST")).status == 200
        await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert await conn.closed_by_server(quiet=3.0)


async def test_idle_keep_alive_connection_is_closed(port: int) -> None:
    """After an answered request, an idle connection is closed."""
    async with raw_connection(port) as conn:
        await conn.send(request_bytes("GET", "/", [HOST]))
        assert (await conn.response()).status == 200
        assert await conn.closed_by_server(quiet=3.0)


@pytest.mark.parametrize("pipelined", [False, True], ids=["alone", "after-a-request"])
async def test_long_head_is_431_after_what_came_before(port: int, pipelined: bool) -> None:
    """A head over the cap is a 431 problem+json; a request pipelined before it is answered
    first, in order."""
    lines = [(f"X-Big-{n}", "a" * 1000) for n in range(MAX_HEAD_BYTES // 1000 + 1)]
    first = request_bytes("GET", "/", [HOST]) if pipelined else b""
    async with raw_connection(port) as conn:
        await conn.send(first + request_bytes("GET", "/", [HOST, *lines]))
        if pipelined:
            assert (await conn.response()).status == 200
        response = await conn.response()
        assert response.status == 431
        assert json.loads(response.body)["reason"] == "header_too_large"
        assert await conn.closed_by_server()
