"""The answer side of a relayed exchange (:class:`~gateway.relay.exchange.Exchange` builds on
:class:`Answering`): reading the upstream's response, relaying it to the client, and every way
an exchange ends (answered, refused, failed, cut, timed out)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httptools
from aiohttp import web

from gateway.errors import GatewayError, bad_gateway
from gateway.relay.added import NO_FIELDS
from gateway.relay.heads import RelayRequest, response_bytes
from gateway.relay.response_head import NO_BODY_STATUS, ResponseHead, whole_answer
from gateway.relay.upstream import UpstreamConnection, UpstreamPool

if TYPE_CHECKING:
    from gateway.relay.client import ClientConnection

#: Methods a request may be sent again with (RFC 9110 §9.2.2), like nginx's retries.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
#: A response head longer than this is the upstream's fault: 502.
_MAX_RESPONSE_HEAD = 64 * 1024
#: How the response body is framed for the client.
_NONE, _LENGTH, _CHUNKS, _UNTIL_CLOSE = range(4)


class Answering:
    """An exchange's state, its answer and its endings."""

    __slots__ = (
        "_added",
        "_foreign",
        "_framing",
        "_head",
        "_held",
        "_last_read",
        "_length_left",
        "_pool",
        "_received",
        "_response",
        "_reused",
        "_status",
        "_task",
        "_unframed",
        "attached",
        "body_left",
        "client",
        "client_address",
        "over",
        "relay",
        "request",
        "request_id",
        "route",
        "started",
        "upstream",
    )

    def __init__(self, client: ClientConnection, request: RelayRequest) -> None:
        self.client = client
        self.request = request
        self.relay = client.relay
        self.client_address = client.client_address  # a trusted proxy's: see Exchange.start
        self.started = time.perf_counter()
        self.route = "unmatched"
        self.request_id = ""
        self.body_left = request.body_length
        self.over = False
        self.upstream: UpstreamConnection | None = None
        #: Request-body bytes waiting for the upstream connection (made when some come).
        self._held: bytearray | None = None
        self._head = b""
        self._added = NO_FIELDS
        self._foreign = True
        self._pool: UpstreamPool | None = None
        self._reused = False
        self._task: asyncio.Task[None] | None = None
        #: Sent upstream: the relay's sweep checks its deadline (see ``check_deadline``).
        self.attached = False
        self._last_read = 0.0
        self._response: ResponseHead | None = None
        #: The upstream's answer head so far, when it comes in pieces.
        self._received: bytearray | None = None
        self._framing = _NONE
        self._length_left = 0
        self._status = 0
        self._unframed = False

    def _connected(self, connection: UpstreamConnection) -> None:
        raise NotImplementedError  # Exchange: a new upstream connection is ready

    def _unreachable(self, exc: BaseException) -> None:
        raise NotImplementedError  # Exchange: no upstream connection could be opened

    def refuse(self, error: GatewayError) -> None:
        """Answer with ``error`` (problem+json) instead of the upstream (see Exchange)."""
        raise NotImplementedError

    # -- the response -----------------------------------------------------------------------

    def upstream_data(self, data: bytes) -> None:
        """Bytes of the upstream's answer."""
        self._last_read = self.relay.loop.time()
        framing = self._framing
        if self._response is None:
            self._read_head(data)
        elif framing == _LENGTH:
            self._relay_length(data)
        elif framing == _CHUNKS:
            self._relay_chunks(data)
        elif framing == _UNTIL_CLOSE:
            self.client.write(data if self._unframed else b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self._done(reusable=False)  # bytes after a body-less answer

    def _read_head(self, data: bytes) -> None:
        received = self._received
        if not received and self._foreign and self.request.method != "HEAD":
            # The common answer, whole in one read: to the client in one step.
            close = self._closes_client()
            keep_alive = self.request.http10 and not close
            whole = whole_answer(data, self._added, close=close, keep_alive=keep_alive)
            if whole is not None:
                self._status, answer = whole
                self.client.write(answer)
                self._done(reusable=True, close=close)
                return
        if received:  # the head came in pieces
            received += data
            data = bytes(received)
            received.clear()
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > _MAX_RESPONSE_HEAD:
                    self._answer_upstream_error(bad_gateway())
                elif received is None:
                    self._received = bytearray(data)
                else:
                    received += data
                return
            try:
                response = ResponseHead(data[: end + 4])
            except (httptools.HttpParserError, ValueError):
                self._answer_upstream_error(bad_gateway())
                return
            data = data[end + 4 :]
            if response.status >= 200:  # interim answers (100, 103 Early Hints) are not passed on
                self._respond(response, data)
                return

    def _respond(self, response: ResponseHead, rest: bytes) -> None:
        """Relay ``response``; ``rest`` is what came after its head."""
        if not self._foreign and response.status == 401 and self._refused(response):
            return
        self._response = response
        if self.request.method == "HEAD" or response.status in NO_BODY_STATUS:
            self._framing = _NONE
        elif response.chunked:
            self._framing = _CHUNKS
        elif response.length is not None:
            self._framing = _LENGTH
            self._length_left = response.length
        else:
            self._framing = _UNTIL_CLOSE
        relay_frames = self._framing in (_CHUNKS, _UNTIL_CLOSE)
        if relay_frames and self.request.http10:
            # HTTP/1.0 has no chunks: the body runs until the connection closes.
            self._unframed = True
            response.unframed()
        close = self._closes_client()
        head = response.client_head(
            self._added,
            chunked=relay_frames and not self._unframed,
            close=close,
            keep_alive=self.request.http10 and not close,
            foreign=self._foreign,
        )
        if self._framing == _LENGTH and rest:
            # The common answer: head and body in one write (one system call).
            self._relay_length(rest, head, close)
        elif self._framing == _NONE or (self._framing == _LENGTH and not self._length_left):
            self.client.write(head)
            self._done(reusable=not rest and response.keep_alive, close=close)
        else:
            self.client.write(head)
            if rest:
                self.upstream_data(rest)

    def _relay_length(self, data: bytes, head: bytes = b"", close: bool | None = None) -> None:
        left = self._length_left
        clean = len(data) <= left
        if not clean:
            data = data[:left]
        self._length_left = left - len(data)
        transport = self.client.transport
        assert transport is not None
        transport.write(head + data if head else data)
        if self._length_left == 0:
            assert self._response is not None
            self._done(reusable=clean and self._response.keep_alive, close=close)

    def _relay_chunks(self, data: bytes) -> None:
        assert self._response is not None
        try:
            out, complete, clean = self._response.decode_chunks(data)
        except httptools.HttpParserError:
            self._cut()
            return
        if out:
            self.client.write(out)
        if complete:
            self._done(reusable=clean and self._response.keep_alive)

    def upstream_lost(self) -> None:
        """The upstream connection closed under this exchange."""
        self.upstream = None
        if self.over:
            return
        if self._response is None:
            if self._reused and self._repeatable() and not self._received:
                # A kept-alive connection the upstream had closed: nothing was answered, and an
                # idempotent request without a body can go again as it was, on a new connection.
                self._reused = False
                assert self._pool is not None
                self._pool.connect(self._connected, self._unreachable)
                return
            self._answer_upstream_error(bad_gateway())
        elif self._framing == _UNTIL_CLOSE:
            if not self._unframed:
                self.client.write(b"0\r\n\r\n")
            self._done(reusable=False)
        else:
            self._cut()

    def _refused(self, response: ResponseHead) -> bool:
        """Whether a 401 from keygate's own service was answered otherwise (see Exchange)."""
        raise NotImplementedError

    def _repeatable(self) -> bool:
        return self.request.body_length == 0 and self.request.method in _IDEMPOTENT

    # -- endings ----------------------------------------------------------------------------

    def _closes_client(self) -> bool:
        return (
            self.body_left > 0
            or not self.request.keep_alive
            or self.client.closing
            or self._unframed
        )

    def _answer_upstream_error(self, error: GatewayError) -> None:
        self.relay.pipeline.count_upstream_error(error)
        self.refuse(error)

    def _answer(self, response: web.Response, status: int) -> None:
        if self.over:
            return
        if self._response is not None:
            self._cut()  # the upstream's head is out already: only a cut can tell the client
            return
        self.client.write(response_bytes(response, close=self._closes_client()))
        self._status = status
        self._done(reusable=False)

    def _cut(self) -> None:
        self.client.abort()
        self._done(reusable=False)

    def _done(self, *, reusable: bool, close: bool | None = None) -> None:
        """The exchange is over: the upstream connection goes back or is closed, the duration
        is counted, and the client connection moves on to its next request (or closes).
        ``close`` is :meth:`_closes_client` when the caller has just asked it."""
        if self.over:
            return
        self.over = True
        self.attached = False
        if self._task is not None:
            self._stop_task()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            if reusable and self.body_left == 0 and self._pool is not None:
                self._pool.release(upstream)
            else:
                upstream.close()
        status = self._status or (self._response.status if self._response is not None else 500)
        relay, seconds = self.relay, time.perf_counter() - self.started
        route = self.route
        # Counted at the next metrics flush (Relay.finished): one append here.
        relay.finished.append((route, status, seconds))
        if not relay.batch.pending:
            relay.batch.schedule()
        access = relay.access
        if access.enabled:
            request_id, method = self.request_id, self.request.method
            access.record(request_id, method, route, status, seconds, self.client_address)
        self.client.exchange_done(close=self._closes_client() if close is None else close)

    def _stop_task(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def client_lost(self) -> None:
        """The client went away: stop everything this exchange started."""
        if self.over:
            return
        self.over = True
        self.attached = False
        self._stop_task()
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
