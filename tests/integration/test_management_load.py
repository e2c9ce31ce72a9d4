"""Token creation cannot starve the rest of the introspector (security review 8).

argon2 runs before a pool connection is taken, a pool that stays busy answers 503 instead of
queueing forever, and creation is rate limited per person and per client address.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from introspector.appkeys import POOL
from introspector.models import User
from tests.harness.cast import problem, token_rows
from tests.harness.servers import RedisServer
from tests.harness.stack import API, Introspector, StartIntrospector, StartStack

CREATES = 200
PEOPLE = 20


async def test_cold_tokens_answer_while_creates_queue(start_stack: StartStack) -> None:
    """200 creates on a 2-connection pool: a cold token and whoami still pass the gateway (200)."""
    stack = await start_stack({"KEYGATE_DATABASE_POOL_SIZE": "2"})
    ki = stack.introspector
    people = [await ki.user(f"p{i}@example.com") for i in range(PEOPLE)]
    cold = [await stack.token_for(people[0], name=f"cold{i}") for i in range(2)]
    before = await token_rows(ki)
    creates = [
        asyncio.create_task(ki.create(people[i % PEOPLE], name=f"flood{i}")) for i in range(CREATES)
    ]
    await asyncio.sleep(0.2)  # the creates are queued for argon2 now
    app_answer = await stack.gateway.get("/app", headers={"Authorization": f"Bearer {cold[0]}"})
    who = await stack.gateway.get(f"{API}/whoami", headers={"Authorization": f"Bearer {cold[1]}"})
    assert app_answer.status == 200, await app_answer.text()
    assert who.status == 200, await who.text()
    statuses = [(await task).status for task in creates]
    assert set(statuses) <= {201, 503}, statuses
    assert await token_rows(ki) == before + statuses.count(201)


async def test_a_busy_pool_answers_503_and_writes_nothing(
    start_introspector: StartIntrospector,
) -> None:
    """While the only pool connection is taken, whoami and create answer 503 + Retry-After."""
    ki = await start_introspector(KEYGATE_DATABASE_POOL_SIZE="1")
    alice = await ki.user("alice@example.com")
    app = ki.client.app
    assert app is not None
    async with app[POOL].acquire():
        who = await asyncio.wait_for(
            ki.client.get(f"{API}/whoami", headers=ki.headers(alice)), timeout=10
        )
        created = await asyncio.wait_for(ki.create(alice, name="late"), timeout=10)
    for response in (who, created):
        await problem(response, 503)
        assert response.headers["Retry-After"].isdigit()
    assert await token_rows(ki) == 0


async def _create_from(ki: Introspector, user: User, address: str) -> aiohttp.ClientResponse:
    headers = {**ki.headers(user), "X-Keygate-Client-Address": address}
    body: dict[str, Any] = {"name": "t"}
    return await ki.client.post(f"{API}/api-tokens", json=body, headers=headers)


async def test_creation_is_rate_limited_per_person(start_introspector: StartIntrospector) -> None:
    """With 3 creates a minute per person, the 4th is 429 + Retry-After; others still create."""
    ki = await start_introspector(KEYGATE_TOKEN_CREATE_LIMIT_PER_USER="3")
    alice = await ki.user("alice@example.com")
    bob = await ki.user("bob@example.com")
    for i in range(3):
        assert (await _create_from(ki, alice, f"192.0.2.{i}")).status == 201
    refused = await _create_from(ki, alice, "192.0.2.9")
    body = await problem(refused, 429)
    assert body["reason"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 1
    assert await token_rows(ki) == 3
    assert (await _create_from(ki, bob, "192.0.2.10")).status == 201


async def test_creation_is_rate_limited_per_address(start_introspector: StartIntrospector) -> None:
    """With 3 creates a minute per address, a 4th person from that address gets 429."""
    ki = await start_introspector(KEYGATE_TOKEN_CREATE_LIMIT_PER_ADDRESS="3")
    people = [await ki.user(f"p{i}@example.com") for i in range(5)]
    for person in people[:3]:
        assert (await _create_from(ki, person, "2001:db8::1")).status == 201
    await problem(await _create_from(ki, people[3], "2001:db8::2"), 429)  # same /64
    assert (await _create_from(ki, people[4], "198.51.100.7")).status == 201


async def test_creation_limits_hold_while_redis_is_down(
    start_introspector: StartIntrospector, redis_server: RedisServer
) -> None:
    """Redis paused: the per-person limit falls back to this process's counters (still 429)."""
    ki = await start_introspector(KEYGATE_TOKEN_CREATE_LIMIT_PER_USER="2")
    alice = await ki.user("alice@example.com")
    redis_server.pause()
    try:
        statuses = [(await _create_from(ki, alice, "192.0.2.1")).status for _ in range(3)]
    finally:
        redis_server.resume()
    assert statuses == [201, 201, 429]
