"""keygate on a replicated Postgres, in this process: the stack the failover tests drive."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from introspector import users
from introspector.app import create_app as create_introspector
from introspector.db import writable_server
from introspector.hashing import SecretHasher
from introspector.models import Actor
from introspector.settings import IntrospectorSettings
from keygate_cli.settings import load_settings
from tests.harness.relay import RelayTestServer
from tests.harness.stack import API, INTERNAL_SECRET, gateway_env, introspector_env
from tests.harness.upstream import create_upstream

#: Creation is throttled and live tokens are capped per person by default; these tests create
#: as fast as they can, often more than the cap.
NO_CREATE_LIMITS = {
    "KEYGATE_TOKEN_CREATE_LIMIT_PER_USER": "100000",
    "KEYGATE_TOKEN_CREATE_LIMIT_PER_ADDRESS": "100000",
    "KEYGATE_MAX_TOKENS_PER_USER": "100000",
}


async def start_stack(
    url: str, redis_url: str, aiohttp_client: Any, aiohttp_server: Any
) -> tuple[str, str]:
    """An introspector and a gateway in this process on ``url``; their base URLs."""
    settings = load_settings(
        IntrospectorSettings, introspector_env(url, redis_url, **NO_CREATE_LIMITS)
    )
    introspector = await aiohttp_client(create_introspector(settings))
    upstream = await aiohttp_server(create_upstream()[0])
    introspector_url = str(introspector.make_url("")).rstrip("/")
    upstream_url = str(upstream.make_url("")).rstrip("/")
    # A short L1 lifetime: during the outage the gateway also asks the introspector, which
    # answers from its Redis cache — both caches are exercised, not only the gateway's memory.
    extra = {"KEYGATE_RATE_LIMIT_PER_MINUTE": "1000000", "KEYGATE_L1_CACHE_TTL_SECONDS": "1"}
    gateway_settings = load_settings(
        GatewaySettings, gateway_env(introspector_url, upstream_url, redis_url, **extra)
    )
    gateway = await aiohttp_client(RelayTestServer(create_gateway(gateway_settings)))
    return introspector_url, str(gateway.make_url("")).rstrip("/")


async def owner_tokens(url: str, introspector_url: str, hasher: SecretHasher) -> list[str]:
    """Three tokens of one person, made through the management API."""
    conn = await asyncpg.connect(url, target_session_attrs=writable_server(url))
    try:
        owner = await users.create_user(conn, hasher, Actor.operator(), email="ha@example.com")
    finally:
        await conn.close()
    headers = {
        "X-Keygate-Internal-Secret": INTERNAL_SECRET,
        "X-Keygate-User-Id": str(owner.id),
        "X-Keygate-Auth-Method": "session",
    }
    made: list[str] = []
    async with aiohttp.ClientSession() as http:
        for i in range(3):
            async with http.post(
                f"{introspector_url}{API}/api-tokens", json={"name": f"seed {i}"}, headers=headers
            ) as response:
                assert response.status == 201, await response.text()
                made.append((await response.json())["token"])
    return made


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
