"""The whole stack as real processes: CLI, introspector and two gateways, driven with curl."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness.buckets import most_admitted
from tests.harness.servers import free_port, wait_for_port
from tests.harness.stack import process_env
from tests.harness.upstream import Upstream, create_upstream

BIN = Path(sys.executable).parent
KEYGATE = str(BIN / "keygate")


@dataclass
class Processes:
    """Ports of the running services and the environment that reaches them."""

    env: dict[str, str]
    gateways: list[int]
    upstream: Upstream

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [KEYGATE, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


def _spawn(env: dict[str, str], command: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [KEYGATE, command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


@pytest.fixture
async def processes(
    database_url: str, redis_url: str, aiohttp_server: Any
) -> AsyncIterator[Processes]:
    """An introspector and two gateways (separate processes) in front of a recording app."""
    upstream_app, record = create_upstream()
    upstream = await aiohttp_server(upstream_app)
    introspector_port = free_port()
    env = process_env(
        database_url,
        redis_url,
        introspector_port,
        str(upstream.make_url("")).rstrip("/"),
        KEYGATE_OUTBOX_POLL_SECONDS="0.1",
        KEYGATE_RATE_LIMIT_PER_MINUTE="50",
        KEYGATE_REDIS_TIMEOUT_MS="5000",
    )
    children = [_spawn(env, "introspector")]
    gateways = [free_port(), free_port()]
    for port in gateways:
        children.append(_spawn({**env, "KEYGATE_GATEWAY_PORT": str(port)}, "gateway"))
    try:
        for port in (introspector_port, *gateways):
            await asyncio.to_thread(wait_for_port, port, 30)
        yield Processes(env=env, gateways=gateways, upstream=record)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            _, stderr = await asyncio.to_thread(child.communicate, None, 30)
            assert child.returncode == 0, stderr.decode()[-2000:]


def curl(port: int, path: str, token: str) -> tuple[int, dict[str, str], str]:
    """GET through a gateway with the machine's curl; status, headers, body."""
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-i",
            "-H",
            f"Authorization: Bearer {token}",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    # text mode has already turned the CRLFs into plain newlines
    head, _, body = result.stdout.partition("\n\n")
    lines = head.split("\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


async def test_curl_whoami_through_a_running_gateway(processes: Processes) -> None:
    """A CLI-issued token, curl'd through the gateway, returns its owner with rate-limit headers."""
    processes.cli("users", "create", "--email", "ops@example.com")
    token = processes.cli("tokens", "create", "--email", "ops@example.com", "--name", "curl")
    status, headers, body = await asyncio.to_thread(
        curl, processes.gateways[0], "/api/platform/internal/whoami", token
    )
    assert status == 200, body
    assert json.loads(body)["email"] == "ops@example.com"
    assert headers["X-RateLimit-Limit"] == "50"
    assert headers["X-RateLimit-Remaining"] == "49"
    assert "RateLimit-Policy" in headers


async def test_two_gateway_processes_share_the_bucket_and_hear_revocations(
    processes: Processes,
) -> None:
    """Two gateway processes let 50 of 500 requests through (and no more than the bucket
    refilled meanwhile) and both refuse a revoke."""
    # 500 concurrent requests at a bucket of 50; the CLI revoke is refused by both within 1 s.
    processes.cli("users", "create", "--email", "ops@example.com")
    token = processes.cli("tokens", "create", "--email", "ops@example.com", "--name", "load")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:

        async def call(port: int, path: str = "/x") -> int:
            async with http.get(f"http://127.0.0.1:{port}{path}", headers=headers) as r:
                await r.read()
                return r.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(call(processes.gateways[i % 2]) for i in range(500)))
        admitted, elapsed = statuses.count(200), time.monotonic() - started
        assert 50 <= admitted <= most_admitted(50, elapsed), (sorted(set(statuses)), elapsed)
        assert statuses.count(429) == 500 - admitted
        assert len(processes.upstream.requests) == admitted

        listing = processes.cli("tokens", "list", "--email", "ops@example.com", "--json")
        token_id = json.loads(listing)["id"]
        processes.cli("tokens", "revoke", token_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        refused: set[int] = set()
        while loop.time() < deadline and len(refused) < 2:
            for port in processes.gateways:
                if await call(port) == 401:
                    refused.add(port)
            await asyncio.sleep(0.02)
        assert refused == set(processes.gateways)
