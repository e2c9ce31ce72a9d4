"""An upstream on raw asyncio streams, for connection behaviour aiohttp's server never shows.

It answers every request with the same bytes, exactly as given (a 304 that carries the
Content-Length of the representation, say), and closes connections the way busy servers do: a
kept-alive connection idle for a few milliseconds, or one that has served its quota of requests
(the next request on it meets a close without a single response byte).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)

#: A response that promises to keep the connection open.
KEEP_ALIVE_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


@dataclass
class RawUpstream:
    """Answers each request with ``response``; counts what it did.

    ``per_connection``: requests answered on one connection; the next one is met by a close.
    ``idle_close``: seconds a connection may wait for its next request once it has answered
    one before it is closed, taken in turn by successive connections (so that some close just
    as a request is sent on a kept-alive connection). A new connection waits for its first
    request as long as it takes.
    """

    response: bytes
    per_connection: int | None = None
    idle_close: tuple[float, ...] = ()
    connections: int = 0
    answered: int = 0
    closed_on_request: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection, until the rules above or the client close it."""
        idle = self.idle_close[self.connections % len(self.idle_close)] if self.idle_close else None
        self.connections += 1
        answered_here = 0
        try:
            while True:
                try:
                    waiting = idle if answered_here else None
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), waiting)
                except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                if self.per_connection is not None and answered_here >= self.per_connection:
                    self.closed_on_request += 1
                    return
                length = _CONTENT_LENGTH.search(head)
                if length:
                    await reader.readexactly(int(length.group(1)))
                writer.write(self.response)
                await writer.drain()
                answered_here += 1
                self.answered += 1
        except ConnectionError:
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_upstream(upstream: RawUpstream) -> AsyncIterator[str]:
    """Serve ``upstream`` on a free port of 127.0.0.1; yields its base URL."""
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)
