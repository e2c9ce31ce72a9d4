"""A bare relay: the floor of a Python relay on uvloop and httptools, for the benchmark.

It is not keygate and checks nothing: each client connection's request bytes go unchanged to
a kept-alive upstream connection, and the upstream's answer bytes come back unchanged, the
ends of both found by httptools' C parsers. No header is read, stripped or added, nothing is
counted or logged. What keygate's relay spends beyond this on the same machine is what its
checks, headers, metrics and logs cost; what this spends beyond nginx is the price of Python
and uvloop themselves (``docs/performance.md``). Requests with a body, pipelining, upgrades
and errors are out of its scope: the benchmark sends none.

Run as ``python -m tests.bench.bare_relay PORT UPSTREAM_PORT WORKERS``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    """One kept-alive upstream connection; relays one answer at a time to its client."""

    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        client = self.client
        assert client is not None and client.transport is not None
        client.transport.write(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        self.pool.append(self)
        if client is not None:
            client.answered()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.client is not None and self.client.transport is not None:
            self.client.transport.close()


class Client(asyncio.Protocol):
    """One client connection: a request's bytes, once whole, go to a pooled upstream."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: list[Upstream], port: int) -> None:
        self.loop = loop
        self.pool = pool
        self.port = port
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.request = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.request += data
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        request, self.request = bytes(self.request), bytearray()
        if self.pool:
            self._send(self.pool.pop(), request)
        else:
            self.loop.create_task(self._connect(request))

    async def _connect(self, request: bytes) -> None:
        pool = self.pool
        _, upstream = await self.loop.create_connection(
            lambda: Upstream(pool), "127.0.0.1", self.port
        )
        self._send(upstream, request)

    def _send(self, upstream: Upstream, request: bytes) -> None:
        upstream.client = self
        assert upstream.transport is not None
        upstream.transport.write(request)

    def answered(self) -> None:
        """The upstream's answer is all written back; nothing else to do (keep-alive)."""


def serve(sock: socket.socket, upstream_port: int) -> None:
    """Serve on ``sock`` in this process until killed."""
    uvloop.install()
    loop = asyncio.new_event_loop()
    pool: list[Upstream] = []
    server = loop.run_until_complete(
        loop.create_server(lambda: Client(loop, pool, upstream_port), sock=sock)
    )
    try:
        loop.run_forever()
    finally:
        server.close()


def main(argv: list[str]) -> int:
    """Listen on 127.0.0.1:``argv[0]``, relay to 127.0.0.1:``argv[1]`` with ``argv[2]`` worker
    processes sharing the listening socket; this one only waits for SIGTERM or SIGINT and then
    stops them (as nginx's master and keygate's gateway do)."""
    port, upstream_port, workers = (int(arg) for arg in argv[:3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # until sigwait: none is lost meanwhile
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop)
            serve(sock, upstream_port)
            return 0
        children.append(pid)
    signal.sigwait(stop)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
