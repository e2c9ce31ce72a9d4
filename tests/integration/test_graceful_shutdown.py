"""SIGTERM with a request in flight: readiness fails, the request finishes, writes flush, exit 0."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.harness.polling import eventually
from tests.harness.servers import free_port, wait_for_port
from tests.harness.stack import process_env
from tests.harness.upstream import create_upstream

KEYGATE = str(Path(sys.executable).parent / "keygate")
DRAIN_SECONDS = 3.0


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [KEYGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _spawn(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [KEYGATE, name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


async def _seed_token(env: dict[str, str]) -> str:
    """A user and a token named ``drain``, made with the operator CLI."""
    await asyncio.to_thread(_cli, env, "users", "create", "--email", "ops@example.com")
    return await asyncio.to_thread(
        _cli, env, "tokens", "create", "--email", "ops@example.com", "--name", "drain"
    )


async def _slow_request(gateway: str, token: str) -> tuple[int, str]:
    """A bearer request the upstream answers after 3 s: its status and body."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway}/slow?seconds=3", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status, await r.text()


async def _wait_until_draining(http: aiohttp.ClientSession, url: str) -> None:
    """``url`` answers 503 draining (as soon as its process has handled the signal)."""

    async def draining() -> tuple[int, str, str] | None:
        async with http.get(url) as r:
            body = await r.json()
            answer = (r.status, r.headers.get("Retry-After", ""), body["status"])
        return answer if answer[0] == 503 else None

    assert await eventually(draining, within=DRAIN_SECONDS - 1) == (503, "1", "draining"), url


async def _stop(
    services: dict[str, subprocess.Popen[bytes]], signalled: bool
) -> dict[str, tuple[int, str]]:
    """SIGTERM each service unless already sent, and wait: exit status and stderr tail."""
    outputs = {}
    for name, process in services.items():
        if not signalled:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, None, 40)
        outputs[name] = (process.returncode, stderr.decode()[-2000:])
    return outputs


async def _last_used(database_url: str) -> object:
    """``last_used_at`` of the token named ``drain``."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT last_used_at FROM api_token WHERE name = 'drain'")
    finally:
        await conn.close()


async def test_sigterm_drains_finishes_the_request_in_flight_and_flushes_last_used(
    database_url: str, redis_url: str, aiohttp_server: Any
) -> None:
    """SIGTERM mid-request: both say draining, the request finishes, last_used_at is written."""
    upstream_app, record = create_upstream()
    upstream = await aiohttp_server(upstream_app)
    introspector_port, gateway_port = free_port(), free_port()
    env = process_env(
        database_url,
        redis_url,
        introspector_port,
        str(upstream.make_url("")).rstrip("/"),
        KEYGATE_GATEWAY_PORT=str(gateway_port),
        # Only the shutdown flush can write last_used_at within this test.
        KEYGATE_LAST_USED_FLUSH_SECONDS="3600",
        KEYGATE_SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS),
    )
    token = await _seed_token(env)
    services = {name: _spawn(env, name) for name in ("introspector", "gateway")}
    signalled = False
    gateway = f"http://127.0.0.1:{gateway_port}"
    try:
        for port in (introspector_port, gateway_port):
            await asyncio.to_thread(wait_for_port, port, 30)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{gateway}/_keygate/readyz") as r:
                assert r.status == 200, await r.text()
            in_flight = asyncio.create_task(_slow_request(gateway, token))

            async def reached_upstream() -> bool:
                return any(req.raw_path.startswith("/slow") for req in record.requests)

            assert await eventually(reached_upstream, within=20)
            for process in services.values():
                process.send_signal(signal.SIGTERM)
            signalled = True
            # While draining, both still answer, and say they are not ready.
            await _wait_until_draining(http, f"{gateway}/_keygate/readyz")
            await _wait_until_draining(http, f"http://127.0.0.1:{introspector_port}/readyz")
            assert await in_flight == (200, "late")
    finally:
        outputs = await _stop(services, signalled)
    assert outputs["gateway"][0] == 0, outputs["gateway"][1]
    assert outputs["introspector"][0] == 0, outputs["introspector"][1]
    assert await _last_used(database_url) is not None, "the pending write was lost at shutdown"
