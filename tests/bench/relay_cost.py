"""What the relay's Python costs per request, without sockets: ``python -m tests.bench.relay_cost``.

The gateway's relay is driven through its protocol callbacks in-process: one client connection
and one upstream connection whose transports only keep what is written to them, the same
request and answer each time, a token warm in the L1 cache with a limiter lease. It prints the
CPU time per request for a passthrough route and for a bearer token, both with the access log
off as in the benchmark, and for a bearer token with the access log on (written to a file, 64
lines a loop turn), each two ways:

- **hot**: request after request, best of five runs: the code and its data stay in the CPU's
  caches;
- **cold**: each request after 32 MB of other memory traffic, which empties the per-core
  caches as the other processes of a loaded machine do between two of a worker's requests
  (the median of the ``cold`` requests).

No socket and no other process take part, so the figures move far less than req/s on a shared
machine. Under load the relay's cost per request lies between the two, nearer the cold one;
at concurrency 1 every request is cold. A change that saves instructions shows in the hot
figure; only one that touches less code and data shows in the cold one
(docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from gateway.access_log import LOGGER as ACCESS_LOGGER
from gateway.app import create_app
from gateway.appkeys import L1
from gateway.relay.client import ClientConnection
from gateway.relay.server import Relay
from gateway.relay.upstream import UpstreamConnection
from gateway.settings import GatewaySettings
from keygate_cli.settings import load_settings
from keygate_core import logs
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.token_format import generate_token, parse_token
from keygate_demo.embedded import RedisServer

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 38\r\n"
    b"Date: Sun, 06 Dec 2026 06:39:30 GMT\r\nServer: Python/3.11 aiohttp/3.14.5\r\n\r\n"
    b'{"ok":true,"service":"bench-upstream"}'
)


class _Transport:
    """Keeps what is written; reading is never paused, nothing closes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if len(self.written) > 64:
            del self.written[:-1]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


#: Written between two cold requests: more than a core's own caches hold (every 64th byte, one
#: per cache line).
_OTHER_MEMORY = bytearray(32 * 1024 * 1024)
_LINES = b"\x01" * (len(_OTHER_MEMORY) // 64)
#: How long a request may take to reach the upstream (a lease from Redis) before the run fails.
_FORWARD_SECONDS = 10.0


async def _cost(
    environ: dict[str, str], head: bytes, requests: int, warm: str | None, cold: int
) -> tuple[float, float]:
    """CPU µs per request through one gateway's relay: hot (best of five runs) and cold (the
    median of ``cold`` requests)."""
    settings = load_settings(GatewaySettings, environ)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        loop = asyncio.get_running_loop()
        relay = Relay(runner, loop)
        if warm is not None:
            await _warm(runner.app[L1], warm)
        client = ClientConnection(relay)
        client.connection_made(_Transport())  # type: ignore[arg-type]
        pool = relay.pool(settings.upstream_url)
        upstream = UpstreamConnection(pool)
        sent = _Transport()
        upstream.connection_made(sent)  # type: ignore[arg-type]
        pool.open += 1
        pool.release(upstream)
        for _ in range(100):  # the first ones take a lease from Redis
            await _one(client, upstream, head)
        gc.freeze()
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for n in range(requests):
                await _one(client, upstream, head, turn=n % 64 == 0)
            best = min(best, time.process_time() - started)
        method = "token" if warm is not None else "anonymous"
        if f"X-Keygate-Auth-Method: {method}".encode() not in sent.written[-1]:
            raise RuntimeError(f"not forwarded as {method}: {sent.written[-1]!r}")
        return best / requests * 1e6, await _cold(client, upstream, head, cold)
    finally:
        await runner.cleanup()


async def _cold(
    client: ClientConnection, upstream: UpstreamConnection, head: bytes, requests: int
) -> float:
    """The median CPU µs of ``requests`` requests, each after :data:`_OTHER_MEMORY` is
    written; one that waits for a task (a lease from Redis) is not counted."""
    times: list[float] = []
    while len(times) < requests:
        _OTHER_MEMORY[::64] = _LINES
        started = time.process_time()
        client.data_received(head)
        waited = upstream.exchange is None
        await _forwarded(upstream)  # at once, unless a task decides the request
        upstream.data_received(ANSWER)
        if not waited:
            times.append(time.process_time() - started)
        await asyncio.sleep(0)  # the loop turn after it, not timed
    return statistics.median(times) * 1e6


async def _one(
    client: ClientConnection, upstream: UpstreamConnection, head: bytes, *, turn: bool = True
) -> None:
    client.data_received(head)
    await _forwarded(upstream)
    upstream.data_received(ANSWER)
    if turn:
        await asyncio.sleep(0)  # a loop turn now and then, as under load (timers run)


async def _forwarded(upstream: UpstreamConnection) -> None:
    """Return once the request is sent upstream (a task may be deciding it: taking a lease,
    which on a busy machine can take longer than thousands of loop turns)."""
    deadline = time.monotonic() + _FORWARD_SECONDS
    while upstream.exchange is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the request never reached the upstream (refused?)")
        await asyncio.sleep(0)


async def _warm(cache: Any, token: str) -> None:
    """The token in the L1 cache, trusted (the revocation channel heard)."""
    for _ in range(200):
        if cache.listening:
            break
        await asyncio.sleep(0.01)
    result = IntrospectionResult(
        active=True,
        token_id="00000000-0000-0000-0000-000000000001",
        public_id=parse_token(token).public_id,
        user_id="00000000-0000-0000-0000-000000000002",
        email="bench@example.com",
        scope="PERSONAL",
        issued_at=int(time.time()),
    )
    cache.put(parse_token(token), result, cache.epoch)


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """keygate's JSON logging set up as ``serve`` does, writing to ``path`` instead of stderr."""
    root = logging.getLogger()
    handlers, level, json_handler = root.handlers[:], root.level, logs._json_handler
    with path.open("w") as stream, contextlib.redirect_stderr(stream):
        logs.configure_logging("info")
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            logs._json_handler = json_handler


def measure(requests: int, cold: int = 400) -> dict[str, tuple[float, float]]:
    """The three figures, hot and cold, with a Redis server of its own for the limiter and
    revocations."""
    with tempfile.TemporaryDirectory(prefix="keygate-relay-cost-") as folder:
        redis = RedisServer(Path(folder) / "redis")
        redis.start()
        try:
            routes = Path(folder) / "routes.toml"
            routes.write_text('[[route]]\nprefix = "/"\nauth = "none"\n')
            environ = {
                "KEYGATE_REDIS_URL": redis.url(),
                "KEYGATE_INTERNAL_SECRET": secrets.token_urlsafe(48),
                "KEYGATE_UPSTREAM_URL": "http://127.0.0.1:9",
                "KEYGATE_INTROSPECTOR_URL": "http://127.0.0.1:9",
                "KEYGATE_RATE_LIMIT_PER_MINUTE": "10000000",
                "KEYGATE_ACCESS_LOG": "false",  # as in the benchmark's runs (nginx's is off)
            }
            token, _ = generate_token()
            head = (
                f"GET /bench HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
            passthrough = {**environ, "KEYGATE_ROUTES_FILE": str(routes)}
            costs = {
                "passthrough": uvloop.run(_cost(passthrough, head, requests, None, cold)),
                "bearer": uvloop.run(_cost(environ, head, requests, token, cold)),
            }
            log = Path(folder) / "gateway.log"
            with _logging_to(log):
                logged = {**environ, "KEYGATE_ACCESS_LOG": "true"}
                costs["bearer, access log on"] = uvloop.run(
                    _cost(logged, head, requests, token, cold)
                )
            if log.read_text().count(f'"logger": "{ACCESS_LOGGER}"') < requests:
                raise RuntimeError("the access log did not write a line per request")
            return costs
        finally:
            redis.stop()


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per run (default 20,000)")
    parser.add_argument("--cold", type=int, default=400, help="cold requests (default 400)")
    args = parser.parse_args()
    costs = measure(args.requests, args.cold)
    print("| Request | CPU µs per request in the relay's callbacks: hot | cold |")
    print("|---|---:|---:|")
    for name, (hot, cold) in costs.items():
        print(f"| {name} | {hot:.1f} | {cold:.1f} |")


if __name__ == "__main__":
    main()
