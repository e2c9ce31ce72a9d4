"""During a rotation of the internal secret, tokens keep their fast lane.

Each token row's fast verifier is a MAC under a key derived from the internal secret. While
``KEYGATE_INTERNAL_SECRET_PREVIOUS`` names the old secret, a verifier made under it still
recognises the right secret without argon2 (so the failed-attempt gates cannot refuse it), and
is rewritten under the new key on that first use.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.harness.stack import INTERNAL_SECRET, StartIntrospector
from tests.reliability.test_lockout_attacks import (
    ARGON2,
    ROTATED,
    active_after_rotation,
    cache_key,
    forge,
    sample,
)


async def test_verifiers_of_the_previous_secret_need_no_argon2_during_a_rotation(
    start_introspector: StartIntrospector, redis_client: aioredis.Redis
) -> None:
    before_rotation = await start_introspector()
    alice = await before_rotation.user("alice@example.com")
    token = (await before_rotation.create_ok(alice))["token"]
    old_key_id = await before_rotation.db.fetchval("SELECT secret_verifier_key_id FROM api_token")

    ki = await start_introspector(
        KEYGATE_INTERNAL_SECRET=ROTATED, KEYGATE_INTERNAL_SECRET_PREVIOUS=INTERNAL_SECRET
    )
    argon2 = sample(await ki.metrics(), ARGON2)
    # Wrong secrets for the id from many addresses: refused by the old verifier, no argon2.
    for i in range(20):
        assert not await active_after_rotation(ki, forge(token), f"203.0.113.{i + 1}")
    assert await active_after_rotation(ki, token)
    assert sample(await ki.metrics(), ARGON2) == argon2
    # The first use rewrote the verifier under the new key: it no longer needs the old one.
    assert await ki.db.fetchval("SELECT secret_verifier_key_id FROM api_token") != old_key_id
    await redis_client.delete(cache_key(token))
    after_rotation = await start_introspector(KEYGATE_INTERNAL_SECRET=ROTATED)
    assert await active_after_rotation(after_rotation, token)
    assert sample(await after_rotation.metrics(), ARGON2) == 0
