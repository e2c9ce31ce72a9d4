"""Forwarding: stream the request to the upstream and the response back, never buffering.

The raw path and query go upstream byte for byte. Request bodies stream from the client socket
(Content-Length kept when the client sent one, chunked otherwise); response bodies stream back
chunk by chunk, compressed or not, exactly as the upstream sent them. WebSocket upgrades are
proxied frame by frame after the same authentication as any other request.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

from gateway.errors import bad_gateway, gateway_timeout
from gateway.pipeline.cookies import sets_keygate_cookie
from gateway.pipeline.strip import HOP_BY_HOP

CHUNK = 64 * 1024


def upstream_url(base: str, raw_path: str) -> URL:
    """``base`` joined with the client's raw path and query, not re-encoded."""
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


class Forwarder:
    """Sends requests upstream through one keep-alive connection pool."""

    def __init__(self, session: aiohttp.ClientSession, timeout_seconds: float) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=10, sock_read=timeout_seconds
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
            return await self._websocket(request, url, headers)
        body = request.content.iter_chunked(CHUNK) if request.body_exists else None
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
        except TimeoutError:
            raise gateway_timeout() from None
        except (aiohttp.ClientError, OSError):
            raise bad_gateway() from None
        try:
            returned = _response_headers(upstream, foreign)
            if response_headers:
                returned.update(response_headers)
            response = web.StreamResponse(
                status=upstream.status, reason=upstream.reason, headers=returned
            )
            # The upstream's Content-Length, when given, is still true: the body is passed on
            # unchanged. Without one the response goes out chunked.
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
        finally:
            upstream.release()

    async def _websocket(
        self, request: web.Request, url: URL, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        forwarded = CIMultiDict(
            (k, v) for k, v in headers.items() if not k.lower().startswith("sec-websocket-")
        )
        protocols = [
            p.strip()
            for value in request.headers.getall("Sec-WebSocket-Protocol", [])
            for p in value.split(",")
            if p.strip()
        ]
        try:
            upstream = await self._session.ws_connect(
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

        async def pump(
            source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
            sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        ) -> None:
            async for message in source:
                if message.type is WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type is WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                else:
                    break
            await sink.close()

        tasks = [
            asyncio.create_task(pump(client, upstream)),
            asyncio.create_task(pump(upstream, client)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await upstream.close()
            await client.close()
        return client
