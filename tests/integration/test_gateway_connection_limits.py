"""Connection limits on the gateway's client side, on both data paths: unfinished request heads,
idle keep-alive connections, oversized heads and stalled request bodies.

Each limit is set to a second or two so the tests stay short; "handed over" cases first send a
request the relay leaves to aiohttp (``Transfer-Encoding: chunked``), after which the connection
is aiohttp's to its end, and then misbehave on it.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.harness.stack import Stack, StartStack
from tests.reliability.rawhttp import RawConnection, raw_connection, request_bytes

HOST = ("Host", "gateway.test")
#: A chunked POST: the relay hands the connection to aiohttp for it.
HANDED_OVER = request_bytes(
    "POST", "/upload", [HOST, ("Transfer-Encoding", "chunked")], b"2\r\nhi\r\n0\r\n\r\n"
)
SHORT = {
    "KEYGATE_HEADER_TIMEOUT_SECONDS": "1",
    "KEYGATE_KEEPALIVE_TIMEOUT_SECONDS": "1",
    "KEYGATE_BODY_TIMEOUT_SECONDS": "1",
}
PATHS = ["relay", "aiohttp"]


def port(stack: Stack) -> int:
    """The gateway's port on 127.0.0.1."""
    found = stack.gateway.make_url("").port
    assert found is not None
    return found


async def _on_path(conn: RawConnection, path: str) -> None:
    """For ``aiohttp``: move the connection to the slow path with one answered request."""
    if path == "aiohttp":
        await conn.send(HANDED_OVER)
        assert (await conn.response("POST")).status == 200


@pytest.fixture
async def short(start_stack: StartStack) -> Stack:
    """A stack whose head, keep-alive and body timeouts are one second."""
    return await start_stack(**SHORT)


@pytest.mark.parametrize("path", PATHS)
async def test_unfinished_head_is_closed_after_the_header_timeout(short: Stack, path: str) -> None:
    """A client that sends half a request head and then nothing is disconnected."""
    async with raw_connection(port(short)) as conn:
        await _on_path(conn, path)
        await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert await conn.closed_by_server(quiet=4.0)


async def test_head_sent_a_byte_at_a_time_is_still_closed(short: Stack) -> None:
    """Trickling a head (a byte every 0.2 s) does not keep the deadline away."""
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    async with raw_connection(port(short)) as conn:
        closed = asyncio.create_task(conn.closed_by_server(quiet=30.0))
        for byte in head:
            if closed.done():
                break
            try:
                await conn.send(bytes([byte]))
            except ConnectionError:
                break
            await asyncio.sleep(0.2)
        assert await closed, "the connection outlived a 25 s trickled head"


@pytest.mark.parametrize("path", PATHS)
async def test_idle_keep_alive_connection_is_closed(short: Stack, path: str) -> None:
    """After an answered request, a connection that sends nothing more is closed."""
    async with raw_connection(port(short)) as conn:
        await _on_path(conn, path)
        await conn.send(request_bytes("GET", "/hello", [HOST]))
        assert (await conn.response()).status in (200, 404)
        assert await conn.closed_by_server(quiet=4.0)


async def test_keep_alive_connection_in_use_stays_open(short: Stack) -> None:
    """A connection used more often than the keep-alive timeout is not closed."""
    async with raw_connection(port(short)) as conn:
        for _ in range(6):
            await conn.send(request_bytes("GET", "/hello", [HOST]))
            assert (await conn.response()).status in (200, 404)
            await asyncio.sleep(0.5)


def _big_head(total: int, *, one_line: bool) -> bytes:
    if one_line:
        return request_bytes("GET", "/hello", [HOST, ("X-Big", "a" * total)])
    lines = [(f"X-Big-{n}", "a" * 1000) for n in range(total // 1000 + 1)]
    return request_bytes("GET", "/hello", [HOST, *lines])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("one_line", [False, True], ids=["many-lines", "one-line"])
async def test_request_head_over_16_kib_is_431(stack: Stack, path: str, one_line: bool) -> None:
    """A head longer than 16 KiB, in many lines or one, is answered 431 problem+json and the
    connection closed."""
    async with raw_connection(port(stack)) as conn:
        await _on_path(conn, path)
        await conn.send(_big_head(20_000, one_line=one_line))
        response = await conn.response()
        assert response.status == 431
        assert response.header("Content-Type") == ["application/problem+json"]
        assert json.loads(response.body)["reason"] == "header_too_large"
        assert await conn.closed_by_server()


@pytest.mark.parametrize(
    "headers",
    [
        [HOST, ("Content-Length", "1000")],
        [HOST, ("Transfer-Encoding", "chunked")],
    ],
    ids=["relay-content-length", "aiohttp-chunked"],
)
async def test_stalled_request_body_is_408_and_closed(
    short: Stack, headers: list[tuple[str, str]]
) -> None:
    """A POST whose body stops arriving is answered 408 and its connection closed, so a slow
    upload cannot hold an upstream connection."""
    chunked = headers[-1][0] == "Transfer-Encoding"
    first = b"a\r\n0123456789\r\n" if chunked else b"0123456789"
    async with raw_connection(port(short)) as conn:
        await conn.send(request_bytes("POST", "/upload", headers, first))
        response = await conn.response("POST", quiet=5.0)
        assert response.status == 408
        assert json.loads(response.body)["reason"] == "body_timeout"
        assert await conn.closed_by_server(quiet=2.0)
