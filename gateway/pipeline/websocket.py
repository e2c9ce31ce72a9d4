"""Proxied WebSockets: frames relayed both ways, within a lifetime, an idle limit and the life of
the token that opened them.

A WebSocket is authenticated once, at its upgrade; without limits it would outlive everything
that request was allowed on. So each one is closed:

- ``1001`` (going away) after ``KEYGATE_WEBSOCKET_MAX_SECONDS``, whatever its traffic, and after
  ``KEYGATE_WEBSOCKET_IDLE_SECONDS`` without a message either way;
- ``1008`` (policy violation) as soon as the bearer token it was opened with is revoked: the
  gateway's revocation listener calls :meth:`OpenWebsockets.revoked` with the token's public id.

The client's handshake is checked before the upstream's is made, so a bad one opens nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

from gateway.errors import bad_gateway, gateway_timeout
from gateway.pipeline.authn.bearer import bearer_token
from keygate_core.token_format import TokenFormatError, parse_token

#: Close codes (RFC 6455 §7.4.1).
GOING_AWAY = 1001
POLICY_VIOLATION = 1008

Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class OpenWebsockets:
    """The proxied WebSockets opened with a bearer token, by the token's public id."""

    def __init__(self) -> None:
        self._by_token: dict[str, set[asyncio.Event]] = {}

    def add(self, public_id: str, revoked: asyncio.Event) -> None:
        """``revoked`` is set when ``public_id``'s token is revoked."""
        self._by_token.setdefault(public_id, set()).add(revoked)

    def discard(self, public_id: str, revoked: asyncio.Event) -> None:
        """The socket behind ``revoked`` closed."""
        events = self._by_token.get(public_id)
        if events is not None:
            events.discard(revoked)
            if not events:
                del self._by_token[public_id]

    def revoked(self, public_id: str) -> None:
        """Close every socket opened with ``public_id``'s token."""
        for event in self._by_token.pop(public_id, ()):
            event.set()

    def __len__(self) -> int:
        return sum(len(events) for events in self._by_token.values())


@dataclass(frozen=True)
class WebsocketLimits:
    """How long a proxied WebSocket may live, and stay silent."""

    max_seconds: float
    idle_seconds: float


def _public_id(request: web.Request) -> str | None:
    """The public id of the bearer token the upgrade was authenticated with, if any (a bad
    one never gets this far)."""
    token = bearer_token(request)
    if token is None:
        return None
    with contextlib.suppress(TokenFormatError):
        return parse_token(token).public_id
    return None


def _protocols(request: web.Request) -> list[str]:
    return [
        p.strip()
        for value in request.headers.getall("Sec-WebSocket-Protocol", [])
        for p in value.split(",")
        if p.strip()
    ]


async def proxy_websocket(
    session: aiohttp.ClientSession,
    request: web.Request,
    url: URL,
    headers: CIMultiDict[str],
    limits: WebsocketLimits,
    registry: OpenWebsockets,
) -> web.StreamResponse:
    """Open the upstream's WebSocket at ``url`` and relay frames until either side closes or a
    limit (see the module docstring) closes both."""
    protocols = _protocols(request)
    if not web.WebSocketResponse(protocols=protocols).can_prepare(request).ok:
        raise web.HTTPBadRequest(text="not a valid WebSocket handshake")
    forwarded = CIMultiDict(
        (k, v) for k, v in headers.items() if not k.lower().startswith("sec-websocket-")
    )
    try:
        upstream = await session.ws_connect(
            url.with_scheme("wss" if url.scheme == "https" else "ws"),
            headers=forwarded,
            protocols=protocols,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
        )
    except TimeoutError:
        raise gateway_timeout() from None
    except (aiohttp.ClientError, OSError):
        raise bad_gateway() from None
    client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else ())
    try:
        await client.prepare(request)
    except BaseException:
        await upstream.close()  # the client's side never opened: close the upstream's
        raise
    public_id = _public_id(request)
    revoked = asyncio.Event()
    if public_id is not None:
        registry.add(public_id, revoked)
    try:
        await _relay(client, upstream, limits, revoked)
    finally:
        if public_id is not None:
            registry.discard(public_id, revoked)
    return client


async def _relay(
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
    limits: WebsocketLimits,
    revoked: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    last = [loop.time()]

    async def pump(source: Socket, sink: Socket) -> None:
        async for message in source:
            last[0] = loop.time()
            if message.type is WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            else:
                break
        await sink.close()

    async def watch() -> tuple[int, bytes]:
        ends = loop.time() + limits.max_seconds
        while True:
            now = loop.time()
            wake = min(ends, last[0] + limits.idle_seconds)
            if now >= wake:
                return GOING_AWAY, b"time limit" if now >= ends else b"idle"
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wake - now):
                    await revoked.wait()
                    return POLICY_VIOLATION, b"token revoked"

    watcher = asyncio.create_task(watch())
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(pump(client, upstream)),
        asyncio.create_task(pump(upstream, client)),
        watcher,
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel(tasks)
        code, reason = watcher.result() if _finished(watcher) else (1000, b"")
        await upstream.close(code=GOING_AWAY if code != 1000 else 1000)
        await client.close(code=code, message=reason)


def _finished(task: asyncio.Task[tuple[int, bytes]]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
