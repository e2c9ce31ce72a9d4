"""KEYGATE_GATEWAY_OPS_PORT: metrics and readiness on a listener of their own; readyz cached."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway.access_log import LOGGER
from tests.harness.servers import ServerUnavailable, free_port, wait_for_port
from tests.harness.stack import process_env
from tests.integration.test_gateway_workers import KEYGATE, _children, _get, _listening, _totals

WORKERS = 2


@dataclass
class OpsGateway:
    """A two-worker ``keygate gateway`` with an ops port, and the introspector health calls it
    made (a counting stand-in for the introspector)."""

    port: int
    ops_port: int
    introspector_health_calls: list[float]
    process: subprocess.Popen[bytes]


async def _counting_introspector(calls: list[float]) -> tuple[web.AppRunner, int]:
    async def health(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def _wait_until_listening(
    process: subprocess.Popen[bytes], ports: tuple[int, ...], workers: int
) -> None:
    for port in ports:
        try:
            wait_for_port(port, 30)
        except ServerUnavailable:
            process.kill()
            _, stderr = process.communicate(timeout=30)
            raise AssertionError(f"gateway not listening: {stderr.decode()[-2000:]}") from None
    deadline = time.monotonic() + 10
    while workers > 1 and time.monotonic() < deadline:
        children = _children(process.pid)
        if len(children) == workers and all(_listening(p, q) for p in children for q in ports):
            return
        time.sleep(0.05)


@contextlib.asynccontextmanager
async def _gateway(
    database_url: str, redis_url: str, workers: int, ops_port: int | None, **more: str
) -> AsyncIterator[OpsGateway]:
    """``keygate gateway`` in ``workers`` processes, with an ops port when one is given (and
    ``more`` settings)."""
    calls: list[float] = []
    runner, introspector_port = await _counting_introspector(calls)
    port = free_port()
    extra = {"KEYGATE_GATEWAY_OPS_PORT": str(ops_port)} if ops_port else {}
    extra.update(more)
    env = process_env(
        database_url,
        redis_url,
        introspector_port,
        "http://127.0.0.1:9",
        KEYGATE_GATEWAY_PORT=str(port),
        KEYGATE_GATEWAY_WORKERS=str(workers),
        **extra,
    )
    process = await asyncio.to_thread(
        subprocess.Popen,
        [KEYGATE, "gateway"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        ports = (port, ops_port) if ops_port else (port,)
        await asyncio.to_thread(_wait_until_listening, process, ports, workers)
        yield OpsGateway(port, ops_port or port, calls, process)
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, 30)
        if process.poll() is None:
            process.kill()
        await asyncio.to_thread(process.communicate, None, 30)
        await runner.cleanup()


@pytest.fixture
async def ops_gateway(database_url: str, redis_url: str) -> AsyncIterator[OpsGateway]:
    """Two workers with an ops port."""
    async with _gateway(database_url, redis_url, WORKERS, free_port()) as gateway:
        yield gateway


@pytest.fixture
async def plain_gateway(database_url: str, redis_url: str) -> AsyncIterator[OpsGateway]:
    """One worker, everything on the public port (the default)."""
    async with _gateway(database_url, redis_url, 1, None) as gateway:
        yield gateway


async def test_metrics_and_readiness_leave_the_public_port(ops_gateway: OpsGateway) -> None:
    """With an ops port, the public port answers 404 for metrics and readyz; healthz stays."""
    public = ops_gateway.port
    assert (await _get(public, "/_keygate/metrics"))[0] == 404
    assert (await _get(public, "/_keygate/readyz"))[0] == 404
    assert (await _get(public, "/_keygate/healthz"))[0] == 200
    assert (await _get(ops_gateway.ops_port, "/_keygate/healthz"))[0] == 200
    status, body = await _get(ops_gateway.ops_port, "/_keygate/readyz")
    assert status == 200 and '"introspector": "ok"' in body


async def test_every_scrape_of_the_ops_port_reports_every_worker(ops_gateway: OpsGateway) -> None:
    """Requests spread over both workers; every scrape of the ops port counts them all."""
    requests = 100
    for _ in range(requests):
        assert (await _get(ops_gateway.port, "/some/page"))[0] == 502
    for _ in range(10):
        status, text = await _get(ops_gateway.ops_port, "/_keygate/metrics")
        assert status == 200
        assert _totals(text)["proxied"] == requests


async def _readyz_burst(gateway: OpsGateway, workers: int) -> None:
    started = time.monotonic()
    burst = (_get(gateway.ops_port, "/_keygate/readyz") for _ in range(30))
    statuses = await asyncio.gather(*burst)
    elapsed = time.monotonic() - started
    assert {status for status, _ in statuses} == {200}
    assert len(gateway.introspector_health_calls) <= workers * (1 + int(elapsed))


async def test_readiness_is_checked_at_most_once_a_second_per_worker(
    ops_gateway: OpsGateway,
) -> None:
    """A burst of readyz calls on the ops port reaches the introspector at most once per worker
    and second."""
    await _readyz_burst(ops_gateway, WORKERS)


async def test_a_readyz_burst_on_the_public_port_is_not_amplified(
    plain_gateway: OpsGateway,
) -> None:
    """By default readyz is on the public port; a burst there still costs one check a second."""
    await _readyz_burst(plain_gateway, 1)


async def test_sigterm_stops_the_ops_listener_with_the_gateway(ops_gateway: OpsGateway) -> None:
    """SIGTERM stops every worker and its ops listener; the gateway exits 0."""
    ops_gateway.process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.to_thread(ops_gateway.process.communicate, None, 30)
    assert ops_gateway.process.returncode == 0, stderr.decode()[-2000:]
    with pytest.raises(ServerUnavailable):
        wait_for_port(ops_gateway.ops_port, 0.2)


async def test_the_ops_port_answers_with_request_ids_it_counts_and_logs(
    database_url: str, redis_url: str
) -> None:
    """Every answer of the ops listener carries its request id, is counted in the duration
    metric under its route and has its access-log line, as on the public port."""
    ops_port = free_port()
    async with _gateway(database_url, redis_url, 1, ops_port, KEYGATE_LOG_LEVEL="info") as gateway:
        asked: dict[str, tuple[str, int]] = {}
        async with aiohttp.ClientSession() as session:
            for name in ("healthz", "readyz", "metrics", "nothing"):
                url = f"http://127.0.0.1:{ops_port}/_keygate/{name}"
                async with session.get(url) as response:
                    await response.read()
                    asked[response.headers["X-Request-Id"]] = (name, response.status)
            async with session.get(f"http://127.0.0.1:{ops_port}/_keygate/metrics") as response:
                exposition = await response.text()
        assert sorted(asked.values()) == [
            ("healthz", 200),
            ("metrics", 200),
            ("nothing", 404),
            ("readyz", 200),
        ]
        counted = {
            s.labels["route"]: s.value
            for family in text_string_to_metric_families(exposition)
            for s in family.samples
            if s.name == "keygate_gateway_request_duration_seconds_count"
        }
        for route in ("/_keygate/healthz", "/_keygate/readyz", "/_keygate/metrics", "unmatched"):
            assert counted.get(route) == 1, (route, counted)
        gateway.process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(gateway.process.communicate, None, 30)
    logged = {
        line["request_id"]: (line["route"], line["status"])
        for line in (json.loads(raw) for raw in stderr.decode().splitlines() if raw[:1] == "{")
        if line.get("logger") == LOGGER
    }
    for request_id, (name, status) in asked.items():
        route = "unmatched" if name == "nothing" else f"/_keygate/{name}"
        assert logged.get(request_id) == (route, status), (name, logged)
