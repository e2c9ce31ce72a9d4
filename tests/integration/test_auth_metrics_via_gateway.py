"""The specification's auth counters through the gateway (BC-26): an expired token is counted
with reason ``expired``, and what the gateway's in-process cache answers is counted by the
gateway only, never by the introspector."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestServer

from gateway.appkeys import LISTENER
from tests.harness.stack import Stack
from tests.integration.test_introspector_metrics import sample


async def _gateway_sample(stack: Stack, result: str) -> float:
    text = await stack.metrics()
    prefix = f'keygate_gateway_auth_decisions_total{{method="token",result="{result}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


async def test_an_expired_token_is_counted_with_reason_expired(stack: Stack) -> None:
    """401 through the gateway; the introspector counts it with reason ``expired``, the gateway
    (told only ``active: false``, as RFC 7662 answers) with result ``invalid``."""
    alice = await stack.introspector.user("alice@example.com")
    created = await stack.introspector.create_ok(alice)
    await stack.introspector.db.execute(
        "UPDATE api_token SET created_at = now() - interval '1 hour', "
        "expires_at = now() - interval '1 second' WHERE id = $1::uuid",
        created["id"],
    )
    name = "keygate_api_token_auth_failure_total"
    before = await sample(stack.introspector, name, reason="expired")
    gateway_before = await _gateway_sample(stack, "invalid")
    response = await stack.gateway.get(
        "/x", headers={"Authorization": f"Bearer {created['token']}"}
    )
    assert response.status == 401
    assert await sample(stack.introspector, name, reason="expired") == before + 1
    assert await _gateway_sample(stack, "invalid") == gateway_before + 1


async def test_answers_from_the_gateways_cache_are_not_counted_by_the_introspector(
    stack: Stack,
) -> None:
    """Three requests with one token: the gateway counts three successes, the introspector
    one (the first; the gateway answers the others from its cache)."""
    # Listening for revocations, the gateway trusts its cache for its full lifetime.
    assert isinstance(stack.gateway.server, TestServer)
    await asyncio.wait_for(stack.gateway.server.app[LISTENER].connected.wait(), 10)
    alice = await stack.introspector.user("alice@example.com")
    headers = {"Authorization": f"Bearer {await stack.token_for(alice)}"}
    name = "keygate_api_token_auth_success_total"
    before = await sample(stack.introspector, name)
    gateway_before = await _gateway_sample(stack, "ok")
    for _ in range(3):
        assert (await stack.gateway.get("/x", headers=headers)).status == 200
    assert await sample(stack.introspector, name) == before + 1
    assert await _gateway_sample(stack, "ok") == gateway_before + 3
