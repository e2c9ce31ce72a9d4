"""keygate against a Redis that requires AUTH (as the shipped compose and k8s configurations do)."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.harness.polling import eventually
from tests.harness.servers import RedisServer
from tests.harness.stack import StartStack


@pytest.fixture
def auth_redis() -> Iterator[RedisServer]:
    """A private Redis with ``requirepass``; its URL carries the password."""
    base = Path(tempfile.mkdtemp(prefix="keygate-auth-redis-"))
    server = RedisServer(base, password=secrets.token_hex(24))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def _without_password(server: RedisServer) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


async def test_the_redis_requires_auth(auth_redis: RedisServer) -> None:
    """The server really refuses a client without the password (so the next test means it)."""
    anonymous = aioredis.Redis.from_url(_without_password(auth_redis))
    try:
        with pytest.raises(aioredis.AuthenticationError):
            await anonymous.set("probe", "1")
    finally:
        await anonymous.aclose()


async def test_gateway_and_introspector_work_with_a_password_in_the_redis_url(
    start_stack: StartStack, auth_redis: RedisServer
) -> None:
    """Both services authenticate with the URL's password: tokens are cached and limited in
    that Redis, revocation reaches the gateway, and readyz reports Redis ok."""
    url = auth_redis.url()
    stack = await start_stack(
        introspector_env_extra={"KEYGATE_REDIS_URL": url}, **{"KEYGATE_REDIS_URL": url}
    )
    user = await stack.introspector.user("auth-redis@example.com")
    created = await stack.introspector.create_ok(user)
    bearer = {"Authorization": f"Bearer {created['token']}"}
    response = await stack.gateway.get("/page", headers=bearer)
    assert response.status == 200
    assert response.headers["X-RateLimit-Remaining"]
    client = aioredis.Redis.from_url(url)
    try:
        assert await client.keys("kg:tok:*"), "the introspector caches in the AUTH Redis"
        assert await client.keys("kg:rl:*"), "the gateway limits in the AUTH Redis"
    finally:
        await client.aclose()
    ready = await stack.gateway.get("/_keygate/readyz")
    assert ready.status == 200 and (await ready.json())["checks"]["redis"] == "ok"
    assert "keygate_ratelimit_degraded_total 0.0" in await stack.metrics()
    revoked = await stack.introspector.revoke(user, created["id"])
    assert revoked.status == 204

    # The revocation is announced on the AUTH Redis' channel; the gateway's L1 drops the token.
    async def refused() -> bool:
        return (await stack.gateway.get("/page", headers=bearer)).status == 401

    assert await eventually(refused, within=1.0)


async def test_a_wrong_redis_password_shows_in_readiness(
    start_stack: StartStack, auth_redis: RedisServer
) -> None:
    """A gateway with the wrong password reports Redis unavailable instead of passing silently."""
    wrong = f"redis://:wrong-{secrets.token_hex(4)}@127.0.0.1:{auth_redis.port}/0"
    stack = await start_stack(KEYGATE_REDIS_URL=wrong)
    ready = await stack.gateway.get("/_keygate/readyz")
    assert ready.status == 503 and (await ready.json())["checks"]["redis"] == "unavailable"
