"""`keygate introspector` as a real process: serves, logs JSON with request ids, leaks nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from introspector import users
from introspector.hashing import SecretHasher
from introspector.models import Actor
from keygate_core.token_format import parse_token
from tests.harness.servers import free_port
from tests.harness.stack import API, INTERNAL_SECRET, introspector_env

KEYGATE = str(Path(sys.executable).parent / "keygate")


async def _create_use_and_revoke(base: str, identity: dict[str, str]) -> dict[str, Any]:
    """Once healthy: create a token, introspect it and a wrong copy, revoke it; the creation."""
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        async with http.post(f"{base}{API}/api-tokens", json={"name": "x"}, headers=identity) as r:
            assert r.status == 201
            created: dict[str, Any] = await r.json()
        async with http.post(
            f"{base}/introspect",
            data={"token": created["token"]},
            headers={"X-Keygate-Internal-Secret": INTERNAL_SECRET},
        ) as r:
            assert (await r.json())["active"] is True
        wrong = created["token"][:20] + ("A" if created["token"][20] != "A" else "B")
        async with http.post(
            f"{base}/introspect",
            data={"token": wrong + created["token"][21:]},
            headers={"X-Keygate-Internal-Secret": INTERNAL_SECRET},
        ) as r:
            assert await r.json() == {"active": False}
        async with http.delete(f"{base}{API}/api-tokens/{created['id']}", headers=identity) as r:
            assert r.status == 204
    return created


async def test_process_serves_and_logs_no_secrets(
    database_url: str, redis_url: str, db: asyncpg.Connection, hasher: SecretHasher
) -> None:
    """Create, use and revoke through the process; every log line is JSON and secret-free."""
    user = await users.create_user(db, hasher, Actor.operator(), email="ops@example.com")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")},
        **introspector_env(database_url, redis_url),
        "KEYGATE_INTROSPECTOR_PORT": str(port),
        "KEYGATE_LOG_LEVEL": "debug",
    }
    proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, waited for in finally
        [KEYGATE, "introspector"], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE
    )
    identity = {
        "X-Keygate-Internal-Secret": INTERNAL_SECRET,
        "X-Keygate-User-Id": str(user.id),
        "X-Keygate-Auth-Method": "session",
        "X-Request-Id": "req-123",
    }
    try:
        created = await _create_use_and_revoke(f"http://127.0.0.1:{port}", identity)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    requests = [line for line in lines if line["message"] == "request"]
    assert any(line.get("request_id") == "req-123" for line in requests)
    assert all("request_id" in line for line in requests)
    refused = [line for line in lines if line["message"] == "token refused"]
    assert refused and refused[0]["reason"] == "malformed"
    everything = stderr.decode()
    parts = parse_token(created["token"])
    assert created["token"] not in everything
    assert parts.secret not in everything
    assert INTERNAL_SECRET not in everything
