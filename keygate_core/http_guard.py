"""Connection limits for every keygate service's aiohttp server.

aiohttp's own defaults keep an idle connection for an hour and give a client that sends half a
request head just as long. Every keygate service (and the gateway's slow path, which the relay
hands connections to) serves through :class:`GuardedHandler` instead, which:

- closes an idle keep-alive connection after ``keepalive_seconds`` (aiohttp's own timer);
- closes a connection whose request head is not complete ``head_seconds`` after its first byte;
- answers a request head longer than :data:`MAX_HEAD_BYTES` in total, or any one header line
  longer than that, with ``431`` problem+json and closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD

# _ErrInfo: how aiohttp queues a refusal in line with requests (aiohttp is pinned in uv.lock).
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from keygate_core.problems import PROBLEM_JSON, problem_response

#: The longest request head (request line and every header) any keygate service reads.
MAX_HEAD_BYTES = 16 * 1024
#: An idle keep-alive connection is closed after this long (nginx's and aiohttp's old default).
KEEPALIVE_SECONDS = 75.0
#: A request head must be complete this long after its first byte arrived.
HEAD_SECONDS = 20.0

_TOO_LARGE = (431, "header_too_large", "Request header fields too large")
_TOO_LARGE_DETAIL = f"the request head is longer than {MAX_HEAD_BYTES} bytes"


def head_too_large_bytes() -> bytes:
    """The whole ``431`` answer (problem+json, ``Connection: close``) as bytes on the wire."""
    status, reason, title = _TOO_LARGE
    body = json.dumps(
        {
            "type": f"urn:keygate:problem:{reason}",
            "title": title,
            "status": status,
            "detail": _TOO_LARGE_DETAIL,
            "reason": reason,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\nContent-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


HEAD_TOO_LARGE = head_too_large_bytes()


class HeadTooLarge(BadHttpMessage):
    """A request head longer than :data:`MAX_HEAD_BYTES` in total."""

    code = 431

    def __init__(self) -> None:
        super().__init__(_TOO_LARGE_DETAIL)


def _head_size(message: object) -> int:
    """The length of a parsed request head on the wire (0 for a parse error)."""
    if not isinstance(message, RawRequestMessage):
        return 0
    line = len(message.method) + len(message.path) + 11
    return line + sum(len(name) + len(value) + 4 for name, value in message.raw_headers) + 2


class GuardedHandler(RequestHandler):
    """aiohttp's connection protocol with a head deadline and a total head-size cap.

    A head is "in progress" from a byte that arrives once the previous request's body is
    complete until aiohttp's parser has a whole request; one timer per head, none per body.
    """

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        head_seconds: float = HEAD_SECONDS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("access_log", None)
        super().__init__(
            manager,
            loop=loop,
            keepalive_timeout=keepalive_seconds,
            max_line_size=MAX_HEAD_BYTES,
            max_field_size=MAX_HEAD_BYTES,
            **kwargs,
        )
        self._head_seconds = head_seconds
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_count = 0
        self._refused = False
        #: The body of the latest request parsed: bytes are head bytes once it is complete.
        self._last_payload: StreamReader | None = None

    def data_received(self, data: bytes) -> None:
        """Time and size the head in progress, then parse as aiohttp does."""
        if self._refused:
            return  # a 431 is on its way
        if self._upgraded:
            super().data_received(data)  # WebSocket frames, not heads
            return
        last = self._last_payload
        heading = last is None or last.is_eof()
        if heading and self._head_timer is None:
            self._head_bytes = 0
            self._head_count = self._request_count
            self._head_timer = self._loop.call_later(self._head_seconds, self._head_late)
        if heading:
            self._head_bytes += len(data)
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._end_head()
            added = self._request_count - before
            queued = self._messages
            for at in range(len(queued) - added, len(queued)):
                if _head_size(queued[at][0]) > MAX_HEAD_BYTES:
                    self._refuse_head(at)
                    return
            if added and queued:
                self._last_payload = queued[-1][1]
        elif heading and self._head_bytes > MAX_HEAD_BYTES:
            self._end_head()
            self._refuse_head(len(self._messages))

    def _refuse_head(self, keep: int) -> None:
        """Answer 431 after the ``keep`` requests queued before the long head, and close.

        The refusal goes in line as a parse error would (aiohttp answers it through
        :meth:`handle_error`), so answers to earlier pipelined requests keep their order.
        """
        queued = self._messages
        while len(queued) > keep:
            queued.pop()
        self._refused = True
        error = _ErrInfo(status=431, exc=HeadTooLarge(), message=_TOO_LARGE_DETAIL)
        queued.append((error, EMPTY_PAYLOAD))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._request_count == self._head_count:
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Stop the head timer with the connection."""
        self._end_head()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A header line over the cap is a ``431`` (aiohttp says 400)."""
        if isinstance(exc, (LineTooLong, HeadTooLarge)):
            status, reason, title = _TOO_LARGE
            response = problem_response(status, reason, title, _TOO_LARGE_DETAIL)
            response.force_close()
            return response
        return super().handle_error(request, status, exc, message)


class GuardedSite(web.BaseSite):
    """``web.TCPSite`` serving through :class:`GuardedHandler`."""

    __slots__ = ("_head", "_host", "_keepalive", "_port", "_reuse_port", "_sock")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None = None,
        port: int = 0,
        *,
        reuse_port: bool = False,
        sock: socket.socket | None = None,
        head_seconds: float = HEAD_SECONDS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._sock = sock
        self._head = head_seconds
        self._keepalive = keepalive_seconds

    @property
    def name(self) -> str:
        """Where the site listens, for aiohttp's log lines."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Listen."""
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        head, keepalive = self._head, self._keepalive

        def factory() -> GuardedHandler:
            return GuardedHandler(server, loop=loop, head_seconds=head, keepalive_seconds=keepalive)

        if self._sock is not None:
            self._server = await loop.create_server(factory, sock=self._sock)
        else:
            self._server = await loop.create_server(
                factory, self._host, self._port, reuse_port=self._reuse_port or None
            )
