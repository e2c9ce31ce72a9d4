"""The gateway's connections to one upstream are bounded, on both data paths: requests beyond
KEYGATE_UPSTREAM_MAX_CONNECTIONS wait for a connection to come free, and after
KEYGATE_UPSTREAM_QUEUE_SECONDS get 504 instead of opening more."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.harness.polling import eventually
from tests.harness.raw_upstream import KEEP_ALIVE_OK
from tests.harness.stack import Stack, StartStack
from tests.reliability.rawhttp import RawResponse, raw_connection, request_bytes

HOST = ("Host", "gateway.test")
REQUESTS = {
    # The relay's own pool.
    "relay": ("GET", [HOST], b""),
    # A chunked body goes to aiohttp, whose connector has the same bound.
    "aiohttp": ("POST", [HOST, ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"),
}


@dataclass
class HoldingUpstream:
    """Answers each request once ``release`` is set; counts its connections."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    open: int = 0
    most: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: read a request (and a chunked body), wait, answer; repeat."""
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b"chunked" in head.lower():
                    await reader.readuntil(b"0\r\n\r\n")
                await self.release.wait()
                writer.write(KEEP_ALIVE_OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


@contextlib.asynccontextmanager
async def holding(upstream: HoldingUpstream) -> AsyncIterator[str]:
    """Serve ``upstream`` on a free port; yields its base URL."""
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def _send(stack: Stack, path: str) -> RawResponse:
    port = stack.gateway.make_url("").port
    assert port is not None
    method, headers, body = REQUESTS[path]
    async with raw_connection(port) as conn:
        await conn.send(request_bytes(method, "/held", headers, body))
        return await conn.response(method, quiet=8.0)


@pytest.mark.parametrize("path", list(REQUESTS))
async def test_requests_over_the_cap_wait_then_get_504(start_stack: StartStack, path: str) -> None:
    """With two connections allowed and both held by the upstream, a third request opens no
    third connection and is answered 504 after the queue time; the two held ones then finish."""
    upstream = HoldingUpstream()
    async with holding(upstream) as url:
        stack = await start_stack(
            KEYGATE_UPSTREAM_URL=url,
            KEYGATE_UPSTREAM_MAX_CONNECTIONS="2",
            KEYGATE_UPSTREAM_QUEUE_SECONDS="1",
        )
        held = [asyncio.create_task(_send(stack, path)) for _ in range(2)]

        async def both_held() -> bool:
            return upstream.open == 2

        assert await eventually(both_held)
        third = await _send(stack, path)
        assert third.status == 504, third
        assert json.loads(third.body)["reason"] == "upstream_timeout"
        assert upstream.most == 2
        upstream.release.set()
        assert [r.status for r in await asyncio.gather(*held)] == [200, 200]


@pytest.mark.parametrize("path", list(REQUESTS))
async def test_waiting_requests_get_connections_as_they_come_free(
    start_stack: StartStack, path: str
) -> None:
    """Six concurrent requests through a pool of one are all answered, one at a time."""
    upstream = HoldingUpstream()
    upstream.release.set()
    async with holding(upstream) as url:
        stack = await start_stack(
            KEYGATE_UPSTREAM_URL=url,
            KEYGATE_UPSTREAM_MAX_CONNECTIONS="1",
            KEYGATE_UPSTREAM_QUEUE_SECONDS="5",
        )
        answers = await asyncio.gather(*(_send(stack, path) for _ in range(6)))
    assert [r.status for r in answers] == [200] * 6
    assert upstream.most == 1
