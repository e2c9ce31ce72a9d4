"""The client side of the relay: one protocol object per client connection.

It waits for a whole request head, and then either runs the request as an
:class:`~gateway.relay.exchange.Exchange` or, for what the relay leaves to aiohttp (see
:func:`gateway.relay.heads.read_request`), hands the connection over at that request boundary:
aiohttp's protocol takes the transport and every byte from the start of that request on. A
handed-over connection stays with aiohttp to its end.

Pipelined requests wait in the buffer until the one before them is answered; reading pauses
while the buffer holds more than :data:`PIPELINE_BYTES`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from gateway.relay.exchange import Exchange
from gateway.relay.heads import read_request
from keygate_core.http_guard import HEAD_TOO_LARGE, MAX_HEAD_BYTES

if TYPE_CHECKING:
    from gateway.relay.server import Relay

#: A request head longer than this is answered 431 (the same cap as aiohttp's side).
MAX_HEAD = MAX_HEAD_BYTES
#: Bytes of pipelined requests held before reading pauses.
PIPELINE_BYTES = 256 * 1024


class ClientConnection(asyncio.Protocol):
    """One client connection on the relay's listening socket."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._lane = relay.lane
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.closing = False
        self.idle_since = relay.loop.time()
        #: When the relay's sweep first saw an unfinished request head here (0: none seen).
        self.head_seen = 0.0
        self._buffer = bytearray()
        self._remote = ""
        #: The peer is a trusted proxy (its requests go through the stages).
        self.trusted_peer = False
        #: The client address of every request from an untrusted peer.
        self.client_address: str | None = None
        #: The ``X-Forwarded-*`` lines the lane writes, for the last ``Host`` seen.
        self._forwarded: tuple[str, bytes] = ("", b"")
        self._paused: set[str] = set()
        self._writing_paused = False
        self._running = False
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's; they are Transports all the same.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self._remote = peer[0] if isinstance(peer, tuple) else ""
        self.trusted_peer, self.client_address = self.relay.lane.peer(self._remote)
        self.relay.connections.add(self)
        if self.closing:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.client_lost()

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            if not self._buffer and 0 <= data.find(b"\r\n\r\n") == len(data) - 4:
                self._one_head(data)  # the common case: one whole request head, no more
                return
        elif exchange.body_left:
            data = exchange.client_body(data)
            if not data:
                return
        self._buffer += data
        if self.exchange is None:
            self._next()
        elif len(self._buffer) > PIPELINE_BYTES:
            self.pause_reading("pipeline")

    def eof_received(self) -> bool:
        # A half-closed client can still read the answers it is waiting for; the connection
        # closes once they are written.
        self._eof = True
        return self.exchange is not None or bool(self._buffer)

    def _next(self) -> None:
        """Start the next buffered request, if its head is complete."""
        if self._running:
            return  # called back from inside the loop below: it carries on there
        self._running = True
        try:
            while self.exchange is None and self._buffer and not self.closing:
                buffer = self._buffer
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        self._refuse_head()
                    elif b"\n\n" in buffer:
                        self._hand_over()  # a bare-LF head: aiohttp answers those
                    return
                if end + 4 > MAX_HEAD:
                    self._refuse_head()
                    return
                request = read_request(bytes(buffer[: end + 4]), self._remote, self._lane)
                if request is None:  # a bare-LF head among them: read_request looks for it
                    self._hand_over()
                    return
                del buffer[: end + 4]
                self.head_seen = 0.0
                self.exchange = Exchange(self, request)
                self.exchange.start(buffer)
        finally:
            self._running = False
        if self.exchange is None and len(self._buffer) <= PIPELINE_BYTES:
            self.resume_reading("pipeline")

    def _one_head(self, head: bytes) -> None:
        """Start the request whose head is all of ``head``: what :meth:`_next` does, without
        the buffer."""
        if self.closing or len(head) > MAX_HEAD:
            self._buffer += head
            self._next()
            return
        request = read_request(head, self._remote, self._lane)
        if request is None:
            self._buffer += head
            self._hand_over()
            return
        self.head_seen = 0.0
        self.exchange = Exchange(self, request)
        self.exchange.start(self._buffer)

    def forwarded(self, host: str) -> bytes:
        """The lane's ``X-Forwarded-*`` lines for a request with ``host`` (see
        :meth:`gateway.relay.lane.Lane.forwarded`), made once per ``Host`` a connection sends."""
        known_host, lines = self._forwarded
        if known_host != host or not lines:
            lines = self.relay.lane.forwarded(self._remote, host)
            self._forwarded = (host, lines)
        return lines

    def waiting_for_head(self) -> bool:
        """Part of a request head is here, and no request is in flight."""
        return self.exchange is None and bool(self._buffer)

    def _refuse_head(self) -> None:
        """431 and close: the head is longer than :data:`MAX_HEAD`."""
        self._buffer.clear()
        self.closing = True
        assert self.transport is not None
        self.transport.write(HEAD_TOO_LARGE)
        self.transport.close()

    def _hand_over(self) -> None:
        """Give the connection, from the start of the current request, to aiohttp."""
        transport = self.transport
        assert transport is not None
        self.relay.forget(self)
        protocol = self.relay.slow_path()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        data, self._buffer = bytes(self._buffer), bytearray()
        if self._paused:
            self._paused.clear()
            transport.resume_reading()
        protocol.data_received(data)

    def exchange_done(self, *, close: bool) -> None:
        """The current exchange is answered; go on with the next request or close."""
        self.exchange = None
        self.idle_since = self.relay.loop.time()
        self._writing_paused = False  # the upstream connection went back resumed, or closed
        if not (close or self.closing):
            if self._buffer or self._paused:
                self._next()
            if self.exchange is not None or not self._eof:
                return
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    # -- flow control -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` to the client."""
        assert self.transport is not None
        self.transport.write(data)

    def abort(self) -> None:
        """Cut the connection: the answer cannot be finished."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def paused_by_upstream(self) -> bool:
        """Reading is paused because the upstream is not taking the request body."""
        return "upstream" in self._paused

    def pause_reading(self, reason: str) -> None:
        """Stop reading from the client until every ``reason`` is resumed."""
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused.add(reason)

    def resume_reading(self, reason: str) -> None:
        """``reason`` no longer holds reading back."""
        if reason in self._paused:
            self._paused.discard(reason)
            if not self._paused and self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        # The client reads slower than the upstream answers: stop reading the upstream.
        exchange = self.exchange
        if exchange is not None and exchange.upstream is not None:
            self._writing_paused = True
            exchange.upstream.pause_reading()

    def resume_writing(self) -> None:
        exchange = self.exchange
        if self._writing_paused and exchange is not None and exchange.upstream is not None:
            exchange.upstream.resume_reading()
        self._writing_paused = False

    def close_when_idle(self) -> None:
        """Stopping: close now if no request is in flight, else once it is answered."""
        self.closing = True
        if self.exchange is None and self.transport is not None:
            self.transport.close()
