"""The gateway's `local` authenticator believes only session records keygate wrote itself, and a
session store outage costs signed-in people nothing on routes that do not need keygate's word."""

from __future__ import annotations

import hashlib
import json

import redis.asyncio as aioredis

from tests.harness.servers import RedisServer
from tests.harness.stack import API, Stack, StartStack
from tests.integration.test_local_sessions import login, make_user

WHOAMI = f"{API}/whoami"


def record_key(session_id: str) -> str:
    return f"kg:sess:{{{hashlib.sha256(session_id.encode()).hexdigest()}}}"


async def local_stack(start_stack: StartStack) -> Stack:
    return await start_stack(KEYGATE_SESSION_AUTHENTICATOR="local")


async def test_a_session_record_written_straight_into_redis_is_nobody(
    start_stack: StartStack, redis_client: aioredis.Redis
) -> None:
    """Someone who can write Redis but lacks keygate's secret cannot make an admin session."""
    stack = await local_stack(start_stack)
    admin = await stack.introspector.user("admin@example.com", admin=True)
    forged = json.dumps({"userId": str(admin.id), "email": "admin@example.com"})
    await redis_client.set(record_key("pwn"), forged, ex=3600)
    response = await stack.gateway.get(WHOAMI, headers={"Cookie": "kg_session=pwn"})
    assert response.status == 401, await response.text()
    await stack.gateway.get("/app", headers={"Cookie": "kg_session=pwn"})
    assert stack.upstream.last.header("X-Keygate-Auth-Method") == ["anonymous"]
    assert stack.upstream.last.header("X-Keygate-User-Id") == []
    assert 'result="forged_session"' in await stack.metrics()


async def test_a_genuine_record_copied_or_edited_is_nobody(
    start_stack: StartStack, redis_client: aioredis.Redis
) -> None:
    """A real record moved under another cookie's key, or with another user id, is refused."""
    stack = await local_stack(start_stack)
    await make_user(stack.introspector, "dev@example.com", "correct horse")
    admin = await stack.introspector.user("admin@example.com", admin=True)
    session = await (await login(stack.introspector, "dev@example.com", "correct horse")).json()
    genuine = await redis_client.get(record_key(session["sessionId"]))
    assert isinstance(genuine, bytes)
    await redis_client.set(record_key("copied"), genuine, ex=3600)
    edited = genuine.replace(session["userId"].encode(), str(admin.id).encode())
    await redis_client.set(record_key("edited"), edited, ex=3600)
    for cookie in ("copied", "edited"):
        response = await stack.gateway.get(WHOAMI, headers={"Cookie": f"kg_session={cookie}"})
        assert response.status == 401, (cookie, await response.text())
    own = await stack.gateway.get(WHOAMI, headers={"Cookie": f"kg_session={session['sessionId']}"})
    assert (await own.json())["userId"] == session["userId"]


async def test_without_redis_signed_in_people_still_reach_the_app(
    start_stack: StartStack, redis_server: RedisServer
) -> None:
    """Session store down: optional routes pass anonymously (the app decides), required ones 503."""
    stack = await local_stack(start_stack)
    await make_user(stack.introspector, "dev@example.com", "correct horse")
    session = await (await login(stack.introspector, "dev@example.com", "correct horse")).json()
    cookie = {"Cookie": f"kg_session={session['sessionId']}"}
    redis_server.stop()
    try:
        app = await stack.gateway.get("/app", headers=cookie)
        assert app.status == 200, await app.text()
        assert stack.upstream.last.header("X-Keygate-Auth-Method") == ["anonymous"]
        required = await stack.gateway.get(WHOAMI, headers=cookie)
        assert required.status == 503, await required.text()
        assert required.headers["Retry-After"]
    finally:
        redis_server.start()
    assert 'method="session",result="session_unavailable"' in await stack.metrics()
