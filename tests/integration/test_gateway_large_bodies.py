"""A gibibyte each way through a real gateway process: it streams, and its memory stays flat.

The gateway runs as ``keygate gateway`` with one worker, so the spawned process is the one that
serves and its resident set (``VmRSS``) is the gateway's. The bulk upstream is an aiohttp server
of this test's own, on a real port: it counts what it receives without keeping it and streams
what it sends from one reused block. The RSS budget is measured from a baseline taken after a
small transfer each way, so the first-use cost of the data path (imports, pools, buffers) is not
counted against streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.harness.fixtures import Spawn
from tests.harness.services import Service
from tests.harness.stack import Introspector, gateway_env

GIB = 1 << 30
BLOCK = bytes(range(256)) * 4096  # 1 MiB
RSS_BUDGET_KIB = 20 * 1024
WARM_UP = 16 * len(BLOCK)


async def count(request: web.Request) -> web.Response:
    """Counts the request body's bytes, keeping none of them."""
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
    return web.json_response(
        {"size": size, "content_length": request.headers.get("Content-Length")}
    )


async def produce(request: web.Request) -> web.StreamResponse:
    """Streams ``size`` bytes without a Content-Length, one reused block at a time."""
    size = int(request.query["size"])
    response = web.StreamResponse()
    response.content_type = "application/octet-stream"
    await response.prepare(request)
    view = memoryview(BLOCK)
    for offset in range(0, size, len(BLOCK)):
        await response.write(view[: min(len(BLOCK), size - offset)])
    await response.write_eof()
    return response


@dataclass
class Bulk:
    """The gateway process in front of the bulk upstream, and a token to call it with."""

    gateway: Service
    headers: dict[str, str]


@pytest.fixture
async def bulk(
    spawn: Spawn, introspector: Introspector, redis_url: str, aiohttp_server: Any
) -> Bulk:
    """A one-worker gateway process, warmed up by a small transfer each way."""
    app = web.Application()
    app.router.add_post("/count", count)
    app.router.add_get("/produce", produce)
    upstream = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    introspector_url = str(introspector.client.make_url("")).rstrip("/")
    env = gateway_env(introspector_url, upstream, redis_url, KEYGATE_GATEWAY_WORKERS="1")
    gateway = await spawn("gateway", {**env, "KEYGATE_LOG_LEVEL": "warning"})
    alice = await introspector.user("alice@example.com")
    token = (await introspector.create_ok(alice))["token"]
    found = Bulk(gateway, {"Authorization": f"Bearer {token}"})
    async with aiohttp.ClientSession() as http:
        assert (await _upload(http, found, WARM_UP))["size"] == WARM_UP
        assert await _download(http, found, WARM_UP) == WARM_UP
    return found


async def _blocks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // len(BLOCK)):
        yield BLOCK


async def _upload(http: aiohttp.ClientSession, bulk: Bulk, size: int) -> dict[str, Any]:
    """POST ``size`` bytes with a Content-Length; what the upstream counted."""
    headers = {**bulk.headers, "Content-Length": str(size)}
    async with http.post(bulk.gateway.url + "/count", data=_blocks(size), headers=headers) as r:
        assert r.status == 200, await r.text()
        counted: dict[str, Any] = await r.json()
        return counted


async def _download(http: aiohttp.ClientSession, bulk: Bulk, size: int) -> int:
    """GET ``size`` streamed bytes; how many arrived."""
    url = f"{bulk.gateway.url}/produce?size={size}"
    received = 0
    async with http.get(url, headers=bulk.headers) as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_any():
            received += len(chunk)
    return received


@contextlib.asynccontextmanager
async def sampled_rss(service: Service) -> AsyncIterator[list[int]]:
    """The process's RSS (KiB) every 20 ms while the block runs, first sample before it."""
    samples = [service.rss_kib()]

    async def sample() -> None:
        while True:
            await asyncio.sleep(0.02)
            samples.append(service.rss_kib())

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        samples.append(service.rss_kib())


def _report(what: str, seconds: float, samples: list[int]) -> str:
    growth = max(samples) - samples[0]
    line = (
        f"{what}: {seconds:.1f} s ({GIB / seconds / 1e6:.0f} MB/s), gateway RSS "
        f"{samples[0] / 1024:.1f} MiB -> peak {max(samples) / 1024:.1f} MiB "
        f"(+{growth / 1024:.1f} MiB, {len(samples)} samples)"
    )
    print(line)
    return line


async def test_gigabyte_upload_streams_in_flat_memory(bulk: Bulk) -> None:
    """1 GiB uploaded with a Content-Length arrives whole, with that Content-Length, and the
    gateway's RSS grows by under 20 MiB meanwhile."""
    async with aiohttp.ClientSession() as http, sampled_rss(bulk.gateway) as samples:
        started = time.monotonic()
        counted = await _upload(http, bulk, GIB)
        seconds = time.monotonic() - started
    report = _report("1 GiB upload", seconds, samples)
    assert counted == {"size": GIB, "content_length": str(GIB)}
    assert max(samples) - samples[0] < RSS_BUDGET_KIB, report


async def test_gigabyte_download_streams_in_flat_memory(bulk: Bulk) -> None:
    """1 GiB streamed by the upstream without a length arrives whole, and the gateway's RSS
    grows by under 20 MiB meanwhile."""
    async with aiohttp.ClientSession() as http, sampled_rss(bulk.gateway) as samples:
        started = time.monotonic()
        received = await _download(http, bulk, GIB)
        seconds = time.monotonic() - started
    report = _report("1 GiB download", seconds, samples)
    assert received == GIB
    assert max(samples) - samples[0] < RSS_BUDGET_KIB, report
