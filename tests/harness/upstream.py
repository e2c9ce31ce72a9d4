"""A real upstream application for gateway tests: it records exactly what reaches it."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class Received:
    """One request as the upstream saw it."""

    method: str
    raw_path: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> list[str]:
        """Every value of ``name`` (case-insensitive) as received."""
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class Upstream:
    """Everything the upstream received, in order."""

    requests: list[Received] = field(default_factory=list)
    #: Endless streams begun, and of those the ones whose reader went away mid-stream.
    streams_started: int = 0
    streams_cut: int = 0

    @property
    def last(self) -> Received:
        return self.requests[-1]


UPSTREAM_KEY = web.AppKey("upstream", Upstream)


async def _record(request: web.Request) -> None:
    request.app[UPSTREAM_KEY].requests.append(
        Received(request.method, request.raw_path, list(request.headers.items()))
    )


async def echo(request: web.Request) -> web.StreamResponse:
    """Answers with what it received (headers as a list, to show duplicates)."""
    await _record(request)
    body: dict[str, Any] = {
        "path": request.raw_path,
        "headers": list(request.headers.items()),
    }
    return web.json_response(body, headers={"X-Upstream": "yes"})


async def upload(request: web.Request) -> web.Response:
    """Streams the body in and answers with its length and SHA-256."""
    await _record(request)
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"size": size, "sha256": digest.hexdigest()})


async def download(request: web.Request) -> web.StreamResponse:
    """Streams ``size`` pseudo-random-looking bytes without ever holding them."""
    await _record(request)
    size = int(request.query.get("size", "0"))
    response = web.StreamResponse()
    response.content_type = "application/octet-stream"
    await response.prepare(request)
    block = bytes(range(256)) * 256
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        await response.write(piece)
        sent += len(piece)
    await response.write_eof()
    return response


def stream_body(pieces: int) -> bytes:
    """What ``/stream?pieces=<pieces>`` sends: numbered lines of growing length."""
    return b"".join(_stream_piece(i) for i in range(pieces))


def _stream_piece(number: int) -> bytes:
    return f"{number:05d}:".encode() + b"." * (number * 997 % 9000) + b"\n"


async def stream(request: web.Request) -> web.StreamResponse:
    """:func:`stream_body`, each piece written (and flushed) on its own, no Content-Length."""
    await _record(request)
    response = web.StreamResponse(headers={"X-Upstream": "yes"})
    response.content_type = "text/plain"
    await response.prepare(request)
    # aiohttp would put the pieces of a HEAD response on the wire, unframed.
    pieces = 0 if request.method == "HEAD" else int(request.query.get("pieces", "10"))
    for number in range(pieces):
        await response.write(_stream_piece(number))
        # A pause lets each piece leave as its own read for the gateway.
        await asyncio.sleep(0.002)
    await response.write_eof()
    return response


async def endless(request: web.Request) -> web.StreamResponse:
    """Streams until the reader goes away (counted in ``streams_cut``)."""
    await _record(request)
    record = request.app[UPSTREAM_KEY]
    record.streams_started += 1
    response = web.StreamResponse()
    response.content_type = "application/octet-stream"
    await response.prepare(request)
    block = bytes(range(256)) * 256
    try:
        # Bounded only so that a broken test cannot stream for ever.
        for _ in range(1 << 20):
            await response.write(block)
    except (ConnectionError, asyncio.CancelledError):
        record.streams_cut += 1
        raise
    await response.write_eof()
    return response


async def sized(request: web.Request) -> web.Response:
    """``size`` bytes with a Content-Length, for GET and HEAD alike."""
    await _record(request)
    body = b"s" * int(request.query.get("size", "0"))
    return web.Response(body=body, headers={"X-Upstream": "yes"})


async def status(request: web.Request) -> web.Response:
    """The status named in the path, with no body (for 204 and 304)."""
    await _record(request)
    code = int(request.match_info["code"])
    return web.Response(status=code, headers={"ETag": '"v1"', "X-Upstream": "yes"})


async def slow(request: web.Request) -> web.Response:
    """Sleeps before answering (for upstream timeouts)."""
    await _record(request)
    await asyncio.sleep(float(request.query.get("seconds", "5")))
    return web.Response(text="late")


async def cookies(request: web.Request) -> web.Response:
    """Sets two cookies (multi-valued response headers must survive the proxy), then one more
    ``Set-Cookie`` for each ``set`` query parameter, its value as given."""
    await _record(request)
    response = web.Response(text="cookies")
    response.headers.add("Set-Cookie", "a=1; Path=/")
    response.headers.add("Set-Cookie", "b=2; Path=/")
    for value in request.query.getall("set", []):
        response.headers.add("Set-Cookie", value)
    return response


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Echoes text frames, prefixed with the user id the gateway vouched for."""
    await _record(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    user = request.headers.get("X-Keygate-User-Id", "anonymous")
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            await ws.send_str(f"{user}:{message.data}")
    return ws


async def session_check(request: web.Request) -> web.Response:
    """The app's own session check: cookie sid=valid-<user id> is a valid session.

    The e-mail it vouches for is the ``email`` cookie's, else ``cookie@example.com``; with the
    cookie ``verified=1`` it also says the app verified that e-mail (``emailVerified: true``).
    """
    await _record(request)
    sid = request.cookies.get("sid", "")
    if not sid.startswith("valid-"):
        return web.json_response({"error": "no session"}, status=401)
    answer: dict[str, str | bool] = {
        "userId": sid.removeprefix("valid-"),
        "email": request.cookies.get("email", "cookie@example.com"),
    }
    if request.cookies.get("verified") == "1":
        answer["emailVerified"] = True
    return web.json_response(answer)


def create_upstream() -> tuple[web.Application, Upstream]:
    """The recording upstream and its record."""
    app = web.Application()
    record = Upstream()
    app[UPSTREAM_KEY] = record
    app.router.add_route("*", "/upload", upload)
    app.router.add_get("/download", download)
    app.router.add_get("/stream", stream)
    app.router.add_get("/endless", endless)
    app.router.add_get("/sized", sized)
    app.router.add_get("/status/{code:[0-9]{3}}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/cookies", cookies)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/session", session_check)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app, record
