"""Proxied WebSockets end: when their token is revoked, at their maximum lifetime, after an idle
spell, and never open upstream for a handshake the client got wrong."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.harness.stack import Stack, StartStack
from tests.reliability.rawhttp import raw_connection, request_bytes

POLICY_VIOLATION = 1008
GOING_AWAY = 1001


async def _closed(ws: aiohttp.ClientWebSocketResponse, within: float) -> aiohttp.WSMessage:
    """The close frame the gateway sends within ``within`` s (echoes before it are skipped)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while True:
        message = await ws.receive(timeout=max(0.01, give_up - loop.time()))
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return message


async def test_revoking_a_token_closes_its_open_websocket(stack: Stack) -> None:
    """A WebSocket opened with a token is closed with 1008 soon after the token is revoked;
    one opened with another token stays open."""
    alice = await stack.introspector.user("alice@example.com")
    revoked = await stack.introspector.create_ok(alice)
    other = await stack.token_for(alice)
    gateway = stack.gateway
    async with (
        gateway.ws_connect("/ws", headers={"Authorization": f"Bearer {revoked['token']}"}) as ws,
        gateway.ws_connect("/ws", headers={"Authorization": f"Bearer {other}"}) as kept,
    ):
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == f"{alice.id}:hello"
        assert (await stack.introspector.revoke(alice, revoked["id"])).status == 204
        closing = await _closed(ws, within=3.0)
        assert ws.close_code == POLICY_VIOLATION, closing
        await kept.send_str("still here")
        assert (await kept.receive(timeout=5)).data == f"{alice.id}:still here"


async def test_websocket_is_closed_at_its_maximum_lifetime(start_stack: StartStack) -> None:
    """A busy WebSocket is still closed (1001) once KEYGATE_WEBSOCKET_MAX_SECONDS have passed."""
    stack = await start_stack(KEYGATE_WEBSOCKET_MAX_SECONDS="1")
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    async with stack.gateway.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:

        async def chatter() -> None:
            for n in range(30):
                await ws.send_str(f"{n}")
                await asyncio.sleep(0.2)

        talking = asyncio.create_task(chatter())
        try:
            await _closed(ws, within=4.0)
        finally:
            talking.cancel()
        assert ws.close_code == GOING_AWAY


async def test_silent_websocket_is_closed_after_the_idle_timeout(start_stack: StartStack) -> None:
    """A WebSocket with no message either way is closed (1001) after
    KEYGATE_WEBSOCKET_IDLE_SECONDS."""
    stack = await start_stack(KEYGATE_WEBSOCKET_IDLE_SECONDS="1")
    async with stack.gateway.ws_connect("/ws") as ws:
        await _closed(ws, within=4.0)
        assert ws.close_code == GOING_AWAY


@pytest.mark.parametrize(
    "headers",
    [
        [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")],
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "not base64 of 16 bytes"),
            ("Sec-WebSocket-Version", "13"),
        ],
    ],
    ids=["no-key", "bad-key"],
)
async def test_bad_client_handshake_opens_no_upstream_websocket(
    stack: Stack, headers: list[tuple[str, str]]
) -> None:
    """An upgrade the gateway cannot complete is a 400, and the upstream never sees it."""
    port = stack.gateway.make_url("").port
    assert port is not None
    async with raw_connection(port) as conn:
        await conn.send(request_bytes("GET", "/ws", [("Host", "gateway.test"), *headers]))
        assert (await conn.response()).status == 400
    assert not [r for r in stack.upstream.requests if r.raw_path == "/ws"]
