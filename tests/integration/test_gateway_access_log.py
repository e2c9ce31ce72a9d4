"""The gateway's access log: one line per answered request, relayed or answered by keygate
itself, carrying the request id the client got back and never the path or the token."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.access_log import LOGGER
from gateway.appkeys import ACCESS_LOG
from tests.harness.fixtures import Spawn
from tests.harness.stack import Stack, StartStack, gateway_env
from tests.harness.upstream import create_upstream

SECRET_PATH = "/orders/42?card=4111111111111111"


@pytest.fixture(autouse=True)
def access_level() -> Iterator[None]:
    """The access logger at ``info``, as ``KEYGATE_LOG_LEVEL``'s default sets it."""
    logger = logging.getLogger(LOGGER)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def capture(stack: Stack) -> list[str]:
    """Everything the stack's gateway writes to its access log from now on."""
    written: list[str] = []
    server = stack.gateway.server
    assert isinstance(server, TestServer)
    server.app[ACCESS_LOG].sink = written.append
    return written


async def lines(written: list[str], count: int) -> list[dict[str, Any]]:
    """The first ``count`` lines written, parsed, once they are all there (a line goes out at
    the end of the loop turn that answered its request)."""
    for _ in range(200):
        text = "".join(written)
        if text.count("\n") >= count:
            return [json.loads(line) for line in text.splitlines()]
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} lines expected, got {''.join(written)!r}")


async def test_every_answered_request_gets_one_line(stack: Stack) -> None:
    written = capture(stack)
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    gateway = stack.gateway
    #: By the request id the client got back: every answer carries its own.
    answered: dict[str, tuple[str, str, int]] = {}

    async def call(method: str, path: str, headers: dict[str, str], route: str) -> None:
        response = await gateway.request(method, path, headers=headers)
        await response.read()
        answered[response.headers["X-Request-Id"]] = (method, route, response.status)

    await call("GET", SECRET_PATH, {}, "/")  # relayed, anonymous
    await call("POST", SECRET_PATH, {"Authorization": f"Bearer {token}"}, "/")  # relayed, token
    await call("GET", SECRET_PATH, {"Authorization": f"Bearer {token}x"}, "/")  # refused: 401
    await call("GET", "/_keygate/healthz", {}, "/_keygate/healthz")  # keygate's own
    # Expect: 100-continue is handed over to aiohttp, which answers it through the pipeline.
    response = await gateway.put("/upload", data=b"x" * 1000, expect100=True)
    await response.read()
    answered[response.headers["X-Request-Id"]] = ("PUT", "/", response.status)
    found = await lines(written, 5)
    assert len(found) == 5
    text = "".join(written)
    assert "/orders" not in text and "4111" not in text and token not in text
    logged = {e["request_id"]: (e["method"], e["route"], e["status"]) for e in found}
    assert len(logged) == 5  # five different ids
    assert logged == answered
    assert sorted(status for _, _, status in answered.values()) == [200, 200, 200, 200, 401]
    for entry in found:
        assert entry["logger"] == LOGGER and entry["message"] == "request"
        assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
        assert entry["client"] == "127.0.0.1"


async def test_keygate_s_own_refusals_carry_the_id_of_their_line(stack: Stack) -> None:
    written = capture(stack)
    ids = []
    for method, path in (("POST", "/_keygate/healthz"), ("GET", "/_keygate/nope")):
        response = await stack.gateway.request(method, path)
        problem = await response.json()
        assert response.status in (404, 405)
        assert response.headers["X-Request-Id"] == problem["requestId"]
        ids.append(problem["requestId"])
    assert [entry["request_id"] for entry in await lines(written, 2)] == ids


async def test_behind_a_trusted_proxy_the_line_names_the_client_it_forwarded_for(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(KEYGATE_TRUSTED_PROXIES="127.0.0.1/32")
    written = capture(stack)
    forwarded = {"X-Forwarded-For": "198.51.100.23, 203.0.113.9"}
    for path in ("/x", "/_keygate/healthz"):  # the relay, then aiohttp
        assert (await stack.gateway.get(path, headers=forwarded)).status == 200
    assert [(e["route"], e["client"]) for e in await lines(written, 2)] == [
        ("/", "203.0.113.9"),
        ("/_keygate/healthz", "203.0.113.9"),
    ]


async def test_switched_off_the_gateway_writes_no_line(start_stack: StartStack) -> None:
    stack = await start_stack(KEYGATE_ACCESS_LOG="false")
    written = capture(stack)
    for path in ("/x", "/_keygate/healthz"):
        assert (await stack.gateway.get(path)).status == 200
    await asyncio.sleep(0.05)
    assert written == []


async def _traffic(port: int) -> list[tuple[str | None, str, int]]:
    """Five proxied GETs, five for an unknown ``/_keygate/`` path and a WebSocket conversation:
    for each, the request id the client got back (if any), the path and the status."""
    answered: list[tuple[str | None, str, int]] = []
    for path in ("/a/b?q=secret", "/_keygate/nothing-here") * 5:
        # A connection each, so the kernel may hand them to either worker.
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(f"http://127.0.0.1:{port}{path}") as response,
        ):
            request_id = response.headers.get("X-Request-Id")
            answered.append((request_id, response.url.path, response.status))
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws,
    ):
        await ws.send_str("hi")
        assert (await ws.receive()).data == "anonymous:hi"
        answered.append((None, "/ws", 101))
    return answered


async def test_a_gateway_process_writes_its_lines_to_stderr(
    spawn: Spawn, redis_url: str, aiohttp_server: Any
) -> None:
    """``keygate gateway`` as deployed (two workers, default settings): every request's line
    on standard error, with the id its client got back; a WebSocket's when it closes."""
    upstream = await aiohttp_server(create_upstream()[0])
    upstream_url = str(upstream.make_url("")).rstrip("/")
    env = gateway_env("http://127.0.0.1:9", upstream_url, redis_url, KEYGATE_GATEWAY_WORKERS="2")
    gateway = await spawn("gateway", env)  # it polls /_keygate/healthz until it answers
    answered = await _traffic(gateway.port)
    assert await gateway.stop() == 0
    text = gateway.log_path.read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    logged = [(e["request_id"], e["route"], e["status"]) for e in entries if e["logger"] == LOGGER]
    # Relayed answers carry their id; keygate's own answers and the handshake none: by route.
    assert sorted((i, s) for i, path, s in answered if path == "/a/b") == sorted(
        (i, s) for i, route, s in logged if route == "/" and s != 101
    )
    assert sorted(s for i, path, s in answered if path.startswith("/_keygate/")) == sorted(
        s for _, route, s in logged if route == "unmatched"
    )
    assert [s for _, route, s in logged if route == "/" and s == 101] == [101]
    assert {route for _, route, _ in logged} == {"/", "unmatched", "/_keygate/healthz"}
    assert len({i for i, _, _ in logged}) == len(logged)  # two workers, no id twice
    assert {e["client"] for e in entries if e["logger"] == LOGGER} == {"127.0.0.1"}
    assert "secret" not in text
