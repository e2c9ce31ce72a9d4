"""A multi-worker gateway's ops-port scrape covers the bearer path of every worker.

docs/operations/scaling.md tells operators to scale a pod by workers and to scrape each pod
once; the benchmark's sizing phases read the same counters. test_gateway_workers.py shows the
sum for requests that fail upstream; here real tokens go through a real introspector, so the
scrape must also merge the limiter's counters, the L1 cache's counters, the request histogram's
buckets and the L1 entries gauge (``livesum``: each worker holds its own copy of the token).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.servers import free_port, wait_for_port
from tests.harness.stack import process_env
from tests.harness.upstream import create_upstream
from tests.integration.test_gateway_workers import KEYGATE, _children, _get, _listening

REQUESTS = 60


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [KEYGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _figures(exposition: str) -> dict[str, float]:
    """The bearer path's counters, summed over their labels, and the L1 entries gauge."""
    wanted = {
        'keygate_ratelimit_decisions_total{result="allowed"}': "allowed",
        "keygate_gateway_ratelimit_round_trips_total": "round_trips",
        'keygate_gateway_l1_cache_total{result="hit"}': "l1_hits",
        'keygate_gateway_l1_cache_total{result="miss"}': "l1_misses",
        "keygate_gateway_l1_cache_entries": "l1_entries",
    }
    found = dict.fromkeys([*wanted.values(), "count", "inf_bucket"], 0.0)
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in s.labels.items() if k == "result")
            name = f"{s.name}{{{labels}}}" if labels else s.name
            if name in wanted:
                found[wanted[name]] += s.value
            elif s.name.startswith("keygate_gateway_request_duration_seconds") and s.labels.get(
                "route", ""
            ).startswith("/_keygate/"):
                continue
            elif s.name == "keygate_gateway_request_duration_seconds_count":
                found["count"] += s.value
            elif s.name == "keygate_gateway_request_duration_seconds_bucket":
                found["inf_bucket"] += s.value if s.labels["le"] == "+Inf" else 0.0
    return found


def _spawn(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [KEYGATE, name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _wait_for_workers(gateway: subprocess.Popen[bytes], port: int) -> None:
    for _ in range(200):
        workers = _children(gateway.pid)
        if len(workers) == 2 and all(_listening(pid, port) for pid in workers):
            return
        time.sleep(0.05)
    raise AssertionError("the two workers never both listened")


async def test_every_ops_scrape_merges_every_workers_bearer_metrics(
    database_url: str, redis_url: str, aiohttp_server: Any
) -> None:
    """Bearer requests on fresh connections reach both workers; each scrape of the ops port
    counts all of them, and the L1 gauge adds up both workers' entries."""
    upstream = await aiohttp_server(create_upstream()[0])
    introspector_port, port, ops_port = free_port(), free_port(), free_port()
    env = process_env(
        database_url,
        redis_url,
        introspector_port,
        str(upstream.make_url("")).rstrip("/"),
        KEYGATE_GATEWAY_PORT=str(port),
        KEYGATE_GATEWAY_OPS_PORT=str(ops_port),
        KEYGATE_GATEWAY_WORKERS="2",
        KEYGATE_L1_CACHE_TTL_SECONDS="300",
    )
    await asyncio.to_thread(_cli, env, "users", "create", "--email", "workers@example.com")
    token = await asyncio.to_thread(
        _cli, env, "tokens", "create", "--email", "workers@example.com", "--name", "workers"
    )
    services = {name: _spawn(env, name) for name in ("introspector", "gateway")}
    try:
        for listening in (introspector_port, port, ops_port):
            await asyncio.to_thread(wait_for_port, listening, 30)
        await asyncio.to_thread(_wait_for_workers, services["gateway"], port)
        for _ in range(REQUESTS):
            # A connection of its own each time, so the kernel spreads them over both workers.
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
                http.get(
                    f"http://127.0.0.1:{port}/data", headers={"Authorization": f"Bearer {token}"}
                ) as response,
            ):
                assert response.status == 200, await response.text()
        # Each worker writes its L1 size to the shared gauge every second (track_l1_entries).
        await asyncio.sleep(1.5)
        scrapes = [await _get(ops_port, "/_keygate/metrics") for _ in range(10)]
    finally:
        for process in services.values():
            process.send_signal(signal.SIGTERM)
        for process in services.values():
            await asyncio.to_thread(process.communicate, None, 30)
    for status, text in scrapes:
        assert status == 200
        found = _figures(text)
        assert found["allowed"] == REQUESTS
        assert found["l1_hits"] + found["l1_misses"] == REQUESTS
        assert found["count"] == found["inf_bucket"] == REQUESTS
        assert 1 <= found["round_trips"] <= REQUESTS
        # Each worker's first request for the token was its L1 miss and left one entry there.
        assert found["l1_entries"] == found["l1_misses"] == 2
