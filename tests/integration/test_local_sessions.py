"""Local sign-in: sessions minted by the introspector, honoured by the gateway, ended on logout."""

from __future__ import annotations

import hashlib
from typing import Any

import redis.asyncio as aioredis

from introspector import users
from introspector.models import Actor
from tests.harness.servers import RedisServer
from tests.harness.stack import API, Introspector, StartStack
from tests.harness.upstream import create_upstream


async def make_user(introspector: Introspector, email: str, password: str | None) -> str:
    user = await users.create_user(
        introspector.db, introspector.hasher, Actor.operator(), email=email, password=password
    )
    return str(user.id)


async def login(introspector: Introspector, email: str, password: str, address: str = "192.0.2.5"):
    headers = {**introspector.headers(), "X-Keygate-Client-Address": address}
    return await introspector.client.post(
        "/sessions", json={"email": email, "password": password}, headers=headers
    )


async def test_login_mints_a_new_session_each_time(
    introspector: Introspector, redis_client: aioredis.Redis
) -> None:
    """Two logins give two different ids; Redis keys hold a hash of the id, never the id."""
    user_id = await make_user(introspector, "dev@example.com", "correct horse")
    first = await (await login(introspector, "Dev@Example.com", "correct horse")).json()
    second = await (await login(introspector, "dev@example.com", "correct horse")).json()
    assert first["userId"] == second["userId"] == user_id
    assert first["sessionId"] != second["sessionId"]
    keys = [k.decode() if isinstance(k, bytes) else k for k in await redis_client.keys("kg:sess:*")]
    assert len(keys) == 2
    assert all(first["sessionId"] not in k and second["sessionId"] not in k for k in keys)
    digest = hashlib.sha256(first["sessionId"].encode()).hexdigest()
    assert f"kg:sess:{{{digest}}}" in keys


async def test_sign_in_and_out_without_redis_are_503_not_500(
    introspector: Introspector, redis_server: RedisServer
) -> None:
    """The session store is down: an honest 503 with Retry-After, and no session is claimed."""
    await make_user(introspector, "dev@example.com", "correct horse")
    redis_server.stop()
    try:
        response = await login(introspector, "dev@example.com", "correct horse")
        assert response.status == 503, await response.text()
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["reason"] == "unavailable"
        response = await introspector.client.post(
            "/sessions/revoke", json={"sessionId": "x" * 43}, headers=introspector.headers()
        )
        assert response.status == 503, await response.text()
    finally:
        redis_server.start()
    response = await login(introspector, "dev@example.com", "correct horse")
    assert response.status == 201, await response.text()


async def test_wrong_password_unknown_user_and_no_password_look_the_same(
    introspector: Introspector,
) -> None:
    """All three failures are 401 invalid_credentials with the same detail."""
    await make_user(introspector, "dev@example.com", "correct horse")
    await make_user(introspector, "sso@example.com", None)
    bodies = []
    for email, password in [
        ("dev@example.com", "wrong password"),
        ("nobody@example.com", "whatever1"),
        ("sso@example.com", "whatever1"),
        ("not-an-email", "whatever1"),
    ]:
        response = await login(introspector, email, password)
        assert response.status == 401
        bodies.append(await response.json())
    assert {b["reason"] for b in bodies} == {"invalid_credentials"}
    assert len({b["detail"] for b in bodies}) == 1


async def test_failed_logins_are_throttled(start_stack: StartStack) -> None:
    """After the per-(e-mail, address) limit of wrong passwords, that address waits (429);
    the owner at another address still signs in."""
    stack = await start_stack(
        introspector_env_extra={"KEYGATE_FAILED_LOGIN_LIMIT_PER_ACCOUNT_ADDRESS": "3"}
    )
    introspector = stack.introspector
    await make_user(introspector, "dev@example.com", "correct horse")
    for _ in range(3):
        assert (await login(introspector, "dev@example.com", "nope nope")).status == 401
    throttled = await login(introspector, "dev@example.com", "correct horse")
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "60"
    assert (
        await login(introspector, "dev@example.com", "correct horse", "192.0.2.99")
    ).status == 201


async def test_the_per_account_budget_stops_a_distributed_guess(start_stack: StartStack) -> None:
    """Wrong passwords for one e-mail from many addresses stop at the per-account budget."""
    stack = await start_stack(
        introspector_env_extra={"KEYGATE_FAILED_LOGIN_LIMIT_PER_ACCOUNT": "5"}
    )
    introspector = stack.introspector
    await make_user(introspector, "dev@example.com", "correct horse")
    statuses = [
        (await login(introspector, "dev@example.com", "nope nope", f"198.51.100.{i}")).status
        for i in range(1, 8)
    ]
    assert statuses == [401] * 5 + [429] * 2


async def test_gateway_honours_and_forgets_local_sessions(start_stack: StartStack) -> None:
    """With the local authenticator: a live kg_session cookie is the user; after logout, nobody."""
    stack = await start_stack(KEYGATE_SESSION_AUTHENTICATOR="local")
    user_id = await make_user(stack.introspector, "dev@example.com", "correct horse")
    session = await (await login(stack.introspector, "dev@example.com", "correct horse")).json()
    cookie = {"Cookie": f"kg_session={session['sessionId']}"}
    response = await stack.gateway.get("/api/platform/internal/whoami", headers=cookie)
    assert response.status == 200
    assert (await response.json())["userId"] == user_id
    await stack.gateway.get("/app", headers=cookie)
    assert stack.upstream.last.header("X-Keygate-User-Id") == [user_id]
    assert stack.upstream.last.header("X-Keygate-Auth-Method") == ["session"]
    revoke = await stack.introspector.client.post(
        "/sessions/revoke",
        json={"sessionId": session["sessionId"]},
        headers=stack.introspector.headers(),
    )
    assert revoke.status == 204
    assert (await stack.gateway.get("/api/platform/internal/whoami", headers=cookie)).status == 401
    for forged in ("kg_session=", "kg_session=forged", "kg_session=" + "x" * 1000):
        response = await stack.gateway.get("/app", headers={"Cookie": forged})
        assert stack.upstream.last.header("X-Keygate-Auth-Method") == ["anonymous"]


async def test_admin_ui_paths_go_to_the_admin_ui_with_the_internal_secret(
    start_stack: StartStack,
    aiohttp_server: Any,
) -> None:
    """/settings/api-keys and /_keygate/login reach the admin UI with secret and identity."""
    ui_app, ui = create_upstream()
    server = await aiohttp_server(ui_app)
    stack = await start_stack(KEYGATE_ADMIN_UI_URL=str(server.make_url("")).rstrip("/"))
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    for path in (
        "/settings/api-keys",
        "/settings/api-keys/new",
        "/_keygate/login",
        "/_keygate/static/app.css",
    ):
        assert (await stack.gateway.get(path)).status == 200
        assert ui.last.raw_path == path
        assert ui.last.header("X-Keygate-Internal-Secret") != []
    await stack.gateway.get("/settings/api-keys", headers={"Authorization": f"Bearer {token}"})
    assert ui.last.header("X-Keygate-User-Id") == [str(alice.id)]
    assert ui.last.header("Authorization") == []
    assert stack.upstream.requests == []


async def test_bearer_usage_is_counted_per_minute(start_stack: StartStack) -> None:
    """Bearer requests are counted per token and minute and served by the usage endpoint."""
    stack = await start_stack()
    alice = await stack.introspector.user("alice@example.com")
    created = await stack.introspector.create_ok(alice)
    for _ in range(3):
        served = await stack.gateway.get(
            "/x", headers={"Authorization": f"Bearer {created['token']}"}
        )
        assert served.status == 200
    await stack.gateway.close()  # flushes pending counts, as a shutdown would
    response = await stack.introspector.client.get(
        f"{API}/api-tokens/{created['id']}/usage", headers=stack.introspector.headers(alice)
    )
    body = await response.json()
    assert sum(count for _, count in body["minutes"]) == 3
    bob = await stack.introspector.user("bob@example.com")
    other = await stack.introspector.client.get(
        f"{API}/api-tokens/{created['id']}/usage", headers=stack.introspector.headers(bob)
    )
    assert other.status == 404
