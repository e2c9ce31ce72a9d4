"""The gateway's connections to the upstream: reused ones the upstream closed under it, and ones
a departed client leaves behind.

A kept-alive upstream connection may be closed by the upstream at any moment it is idle; a
request written onto it just then gets no response byte at all. Such a request never reached
the application, so an idempotent one is retried (RFC 9112 §9.3.1) and the client never hears
of it. A client that leaves mid-download must not leave the upstream writing into a dead relay.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from tests.harness.polling import eventually
from tests.harness.raw_upstream import KEEP_ALIVE_OK, RawUpstream, raw_upstream
from tests.harness.stack import Stack, StartStack
from tests.reliability.rawhttp import raw_connection, request_bytes

REQUESTS = 300
CONNECTIONS = 16

#: How the upstream ends kept-alive connections, by test id.
CLOSING_RULES: dict[str, dict[str, Any]] = {
    # The race every keep-alive server has: its idle timer fires as a request is on its way.
    # Idle limits of 1 to 12 ms, connection by connection, put some closes right at a reuse.
    "closes-idle-after-1-to-12ms": {"idle_close": tuple(ms / 1000 for ms in range(1, 13))},
    # The race lost every time: each connection serves one request, the next meets a close.
    "closes-when-reused": {"per_connection": 1},
}


def port(stack: Stack) -> int:
    """The gateway's port on 127.0.0.1."""
    found = stack.gateway.make_url("").port
    assert found is not None
    return found


async def _client(gateway_port: int, numbers: range) -> list[int]:
    """GET ``/load/<n>`` for each of ``numbers`` on one kept-alive connection; the statuses."""
    statuses = []
    async with raw_connection(gateway_port) as conn:
        for number in numbers:
            await conn.send(request_bytes("GET", f"/load/{number}", [("Host", "gateway.test")]))
            response = await conn.response()
            assert response.status != 200 or response.body == b"ok", response
            statuses.append(response.status)
    return statuses


@pytest.mark.parametrize("rules", list(CLOSING_RULES.values()), ids=list(CLOSING_RULES))
async def test_upstream_closing_kept_alive_connections_costs_no_request(
    start_stack: StartStack, rules: dict[str, Any]
) -> None:
    """300 GETs over 16 client connections all succeed while the upstream keeps closing the
    connections it said it would keep alive."""
    upstream = RawUpstream(KEEP_ALIVE_OK, **rules)
    async with raw_upstream(upstream) as url:
        stack = await start_stack(KEYGATE_UPSTREAM_URL=url)
        batches = await asyncio.gather(
            *(_client(port(stack), range(n, REQUESTS, CONNECTIONS)) for n in range(CONNECTIONS))
        )
    statuses = Counter(status for batch in batches for status in batch)
    assert statuses == {200: REQUESTS}, f"statuses {dict(statuses)}; upstream {upstream}"
    assert upstream.answered == REQUESTS


async def test_client_leaving_mid_download_releases_the_upstream(stack: Stack) -> None:
    """A client that closes during an endless download: the upstream sees its connection go,
    and the gateway serves other requests during and after."""
    alice = await stack.introspector.user("alice@example.com")
    bearer = ("Authorization", f"Bearer {await stack.token_for(alice)}")
    async with raw_connection(port(stack)) as conn:
        await conn.send(request_bytes("GET", "/endless", [("Host", "gateway.test"), bearer]))
        head = await conn.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        await conn.reader.readexactly(1 << 20)
        during = await stack.gateway.get("/during", headers=[bearer])
        assert during.status == 200
        assert stack.upstream.streams_started == 1 and stack.upstream.streams_cut == 0

    async def cut() -> int:
        return stack.upstream.streams_cut

    assert await eventually(cut) == 1
    after = await stack.gateway.get("/after", headers=[bearer])
    assert after.status == 200
    assert [r.raw_path for r in stack.upstream.requests] == ["/endless", "/during", "/after"]
