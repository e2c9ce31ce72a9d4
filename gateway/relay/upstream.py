"""The upstream side of the relay: one keep-alive connection pool per upstream base URL.

A pool keeps at most :data:`MAX_IDLE` idle connections, most recently used first, and closes
those idle for longer than :data:`IDLE_SECONDS` (upstream servers close theirs too, often
sooner: a connection closed under us is noticed and dropped, and a request that found it closed
before any answer is sent again on a fresh one — see :mod:`gateway.relay.exchange`).

A pool never has more than ``limit`` connections open or opening. A request that needs one
beyond that waits in line (first come, first served) for a connection to come back or close;
after ``queue_seconds`` it is told ``TimeoutError`` (a 504), checked by the relay's sweep.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from yarl import URL

if TYPE_CHECKING:
    from gateway.relay.exchange import Exchange

#: Idle keep-alive connections kept per upstream.
MAX_IDLE = 256
#: An idle connection older than this is closed by the pool's sweep.
IDLE_SECONDS = 60.0
CONNECT_SECONDS = 10.0

OnReady = Callable[["UpstreamConnection"], None]
OnError = Callable[[BaseException], None]


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream; carries one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.idle_since = 0.0
        #: Reading is paused: the client is not keeping up.
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's; they are Transports all the same.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.close()  # nobody asked: an upstream talking out of turn is not reused
        else:
            exchange.upstream_data(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.upstream_lost()

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_reading("upstream")

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume_reading("upstream")

    def write(self, data: bytes) -> None:
        """Send ``data`` (a no-op once closing)."""
        assert self.transport is not None
        self.transport.write(data)

    def pause_reading(self) -> None:
        """The client is not keeping up: stop reading the answer for now."""
        if self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read the answer again."""
        if self.transport is not None and self.reading_paused:
            self.reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def close(self) -> None:
        """Close without reuse."""
        self.exchange = None
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Connections to one upstream base URL (its path becomes every target's prefix)."""

    def __init__(
        self,
        base: str,
        loop: asyncio.AbstractEventLoop,
        *,
        limit: int = 1_000_000,
        queue_seconds: float = CONNECT_SECONDS,
    ) -> None:
        url = URL(base)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) upstream: {base!r}")
        self.host: str = url.host
        self.port: int = url.port or (443 if url.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if url.scheme == "https" else None
        )
        self.prefix = url.raw_path.rstrip("/")
        self.host_header = url.raw_authority
        #: The two as bytes, for the heads the relay writes.
        self.raw_prefix = self.prefix.encode()
        self.raw_host = self.host_header.encode()
        self._loop = loop
        self._idle: list[UpstreamConnection] = []
        self._connecting: set[asyncio.Task[None]] = set()
        self._limit = limit
        self._queue_seconds = queue_seconds
        #: Connections open or being opened.
        self.open = 0
        self._live: set[UpstreamConnection] = set()
        self._waiting: collections.deque[tuple[float, OnReady, OnError]] = collections.deque()

    def acquire_now(self) -> UpstreamConnection | None:
        """The most recently used idle connection that is still open, if any."""
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.transport is not None and not connection.transport.is_closing():
                return connection
        return None

    def connect(
        self,
        on_ready: Callable[[UpstreamConnection], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Open a new connection, or wait for one when ``limit`` are open; ``on_ready`` or
        ``on_error`` is called with the outcome."""
        if self.open >= self._limit:
            deadline = self._loop.time() + self._queue_seconds
            self._waiting.append((deadline, on_ready, on_error))
            return
        self._open_one(on_ready, on_error)

    def _open_one(self, on_ready: OnReady, on_error: OnError) -> None:
        self.open += 1
        task = self._loop.create_task(self._connect(on_ready, on_error))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(
        self,
        on_ready: Callable[[UpstreamConnection], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                _, connection = await self._loop.create_connection(
                    lambda: UpstreamConnection(self), self.host, self.port, ssl=self.ssl
                )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the exchange, which answers for it
            self.open -= 1
            self._next_waiting()
            on_error(exc)
            return
        transport = connection.transport
        if transport is None or transport.is_closing():  # lost as it opened
            self.open -= 1
            self._next_waiting()
            on_error(ConnectionResetError("upstream closed the new connection"))
            return
        self._live.add(connection)
        on_ready(connection)

    def release(self, connection: UpstreamConnection) -> None:
        """Keep ``connection`` for the next request, or close it when the pool is full."""
        connection.exchange = None
        if connection.reading_paused:
            connection.resume_reading()
        connection.idle_since = self._loop.time()  # also marks it as served before
        if self._waiting:
            _, on_ready, _ = self._waiting.popleft()
            on_ready(connection)
            return
        if len(self._idle) >= MAX_IDLE:
            connection.close()
            return
        self._idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        """``connection`` is gone."""
        if connection in self._live:
            self._live.remove(connection)
            self.open -= 1
        if connection in self._idle:
            self._idle.remove(connection)
        self._next_waiting()

    def _next_waiting(self) -> None:
        """A connection closed: open one for the first request waiting, if any."""
        if self._waiting and self.open < self._limit:
            _, on_ready, on_error = self._waiting.popleft()
            self._open_one(on_ready, on_error)

    def sweep(self, now: float) -> None:
        """Close the connections idle for longer than :data:`IDLE_SECONDS`; tell requests
        that waited ``queue_seconds`` for a connection that none came."""
        stale = [c for c in self._idle if now - c.idle_since > IDLE_SECONDS]
        for connection in stale:
            self._idle.remove(connection)
            connection.close()
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            _, _, on_error = waiting.popleft()
            on_error(TimeoutError("no upstream connection came free"))

    def close(self) -> None:
        """Close every idle connection and stop opening new ones."""
        for task in self._connecting:
            task.cancel()
        self._waiting.clear()
        for connection in self._idle:
            connection.close()
        self._idle.clear()
