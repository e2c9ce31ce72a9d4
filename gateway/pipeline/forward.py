"""Forwarding: stream the request to the upstream and the response back, never buffering.

The raw path and query go upstream byte for byte. Request bodies stream from the client socket
(Content-Length kept when the client sent one, chunked otherwise); response bodies stream back
chunk by chunk, compressed or not, exactly as the upstream sent them. WebSocket upgrades are
proxied frame by frame after the same authentication as any other request (see
:mod:`gateway.pipeline.websocket`).

A request body that stops arriving for ``body_seconds`` is answered 408 and the connection
closed; waiting for a connection from the bounded pool (``limit_per_host`` of the session's
connector) and opening it together take at most ``queue_seconds``, else 504.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.errors import (
    bad_gateway,
    bad_path,
    body_timeout,
    gateway_timeout,
    refused_secret,
    service_refused_secret,
)
from gateway.pipeline.cookies import sets_keygate_cookie
from gateway.pipeline.strip import HOP_BY_HOP
from gateway.pipeline.websocket import OpenWebsockets, WebsocketLimits, proxy_websocket
from gateway.settings import GatewaySettings
from keygate_core import headers as wire

CHUNK = 64 * 1024


def upstream_url(base: str, raw_path: str) -> URL:
    """``base`` joined with the client's raw path and query, not re-encoded.

    Only an origin-form target (``/…``) is joined: ``http://app`` + ``evil.com:443`` would be
    another host. Strip refuses the others first; this keeps it true if that ever changes.
    """
    if not raw_path.startswith("/"):
        raise bad_path("the request target must start with /")
    return URL(base.rstrip("/") + raw_path, encoded=True)


def _response_headers(upstream: aiohttp.ClientResponse, foreign: bool) -> CIMultiDict[str]:
    named = {
        token.strip().lower()
        for value in upstream.headers.getall("Connection", [])
        for token in value.split(",")
    }
    # Response headers that describe this hop only; aiohttp sets its own.
    dropped = HOP_BY_HOP | named if named else HOP_BY_HOP
    return CIMultiDict(
        (k, v)
        for k, v in upstream.headers.items()
        if k.lower() not in dropped
        and not (foreign and k.lower() == "set-cookie" and sets_keygate_cookie(v))
    )


def upstream_session(max_connections: int) -> aiohttp.ClientSession:
    """The session requests go upstream through: at most ``max_connections`` per upstream (as
    the relay's pools), no cookie jar, bodies passed on as sent."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=max_connections, ttl_dns_cache=60),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
    )


class _BodyStalled(Exception):
    """The client stopped sending its request body."""


async def _body(
    request: web.Request, idle_seconds: float, stalled: list[bool]
) -> AsyncIterator[bytes]:
    """The request body as it arrives; gives up (``stalled[0]``) after ``idle_seconds`` without
    a byte."""
    content = request.content
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                chunk = await content.readany()
        except TimeoutError:
            stalled[0] = True
            raise _BodyStalled from None
        if not chunk:
            return
        yield chunk


class Forwarder:
    """Sends requests upstream through one keep-alive connection pool."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout_seconds: float,
        *,
        body_seconds: float = 30,
        queue_seconds: float = 10,
        websockets: WebsocketLimits | None = None,
        registry: OpenWebsockets | None = None,
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=queue_seconds, sock_connect=10, sock_read=timeout_seconds
        )
        self._body_seconds = body_seconds
        self._websockets = websockets or WebsocketLimits(max_seconds=3600, idle_seconds=300)
        #: The open WebSockets by token, for closing them on revocation.
        self.registry = registry if registry is not None else OpenWebsockets()

    @classmethod
    def from_settings(cls, session: aiohttp.ClientSession, settings: GatewaySettings) -> Forwarder:
        """The forwarder with the timeouts and WebSocket limits of ``settings``."""
        return cls(
            session,
            settings.upstream_timeout_seconds,
            body_seconds=settings.body_timeout_seconds,
            queue_seconds=settings.upstream_queue_seconds,
            websockets=WebsocketLimits(
                settings.websocket_max_seconds, settings.websocket_idle_seconds
            ),
        )

    async def forward(
        self,
        request: web.Request,
        base: str,
        headers: CIMultiDict[str],
        response_headers: dict[str, str] | None = None,
        *,
        foreign: bool = True,
    ) -> web.StreamResponse:
        """Proxy ``request`` to ``base`` with ``headers`` (already stripped and mutated);
        ``response_headers`` (e.g. rate-limit headers) are added to what the upstream sends.
        A ``foreign`` upstream (not one of keygate's services) cannot set keygate's cookies."""
        url = upstream_url(base, request.raw_path)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await proxy_websocket(
                self._session, request, url, headers, self._websockets, self.registry
            )
        stalled = [False]
        body = _body(request, self._body_seconds, stalled) if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout,
                auto_decompress=False,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if stalled[0]:
                # Close once the 408 is written, without aiohttp's wait for the rest of a body
                # that is not coming.
                request.content.feed_eof()
                request.protocol.close()
                raise body_timeout() from None
            if isinstance(exc, TimeoutError):
                raise gateway_timeout() from None
            raise bad_gateway() from None
        try:
            if not foreign and refused_secret(upstream.status, upstream.headers.get(wire.REFUSED)):
                raise service_refused_secret()
            returned = _response_headers(upstream, foreign)
            returned.update(response_headers or {})
            response = web.StreamResponse(
                status=upstream.status, reason=upstream.reason, headers=returned
            )
            return await _stream(request, upstream, response)
        finally:
            upstream.release()


async def _stream(
    request: web.Request, upstream: aiohttp.ClientResponse, response: web.StreamResponse
) -> web.StreamResponse:
    """The upstream's body to the client as it arrives. The upstream's Content-Length, when
    given, is still true: the body is passed on unchanged. Without one it goes out chunked."""
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
    except (TimeoutError, aiohttp.ClientError, OSError):
        # Headers are gone already; all we can do is cut the connection short.
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
