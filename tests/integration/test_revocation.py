"""Announcing revocations: published for gateways, tombstoned in the cache, and delivered from the
outbox when Redis missed them (a blackout, a crash, a revoke made by the CLI)."""

from __future__ import annotations

import json
from uuid import UUID

import redis.asyncio as aioredis

from introspector import tokens
from introspector.models import Actor
from keygate_core.redis_keys import REVOCATION_CHANNEL
from keygate_core.token_format import parse_token
from tests.harness.polling import eventually
from tests.harness.servers import RedisServer
from tests.harness.stack import Introspector

INACTIVE = {"active": False}


def cached_state(raw: bytes | str) -> str:
    """The state in a cache entry (``<key id>.<mac>.<json>``)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    state: str = json.loads(text.split(".", 2)[2])["state"]
    return state


async def test_revoke_during_a_redis_blackout_is_honoured_after_recovery(
    introspector: Introspector, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Warm cache, Redis paused, revoke (204), Redis resumed → the cached entry is tombstoned."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    assert (await introspector.introspect_json(created["token"]))["active"] is True
    key = f"kg:tok:{{{parse_token(created['token']).public_id}}}"
    cached = await redis_client.get(key)
    assert cached is not None
    assert cached_state(cached) == "active"
    redis_server.pause()
    try:
        assert (await introspector.revoke(alice, created["id"])).status == 204
        pending = await introspector.db.fetchval("SELECT count(*) FROM revocation_outbox")
        assert pending == 1
    finally:
        redis_server.resume()

    async def tombstoned() -> bool:
        raw = await redis_client.get(key)
        return raw is not None and cached_state(raw) == "revoked"

    assert await eventually(tombstoned)
    assert await introspector.introspect_json(created["token"]) == INACTIVE

    async def outbox_drained() -> bool:
        return await introspector.db.fetchval("SELECT count(*) FROM revocation_outbox") == 0

    assert await eventually(outbox_drained)


async def test_revocation_is_published_for_gateways(
    introspector: Introspector, redis_client: aioredis.Redis
) -> None:
    """A revoke publishes the token's public id on the revocation channel."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(REVOCATION_CHANNEL)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    await introspector.revoke(alice, created["id"])
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    await pubsub.aclose()
    assert message is not None
    assert message["data"].decode() == parse_token(created["token"]).public_id


async def test_cli_revocations_reach_the_cache_through_the_outbox(
    introspector: Introspector,
) -> None:
    """A revoke made outside the API (the CLI, straight to Postgres) is still announced."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    assert (await introspector.introspect_json(created["token"]))["active"] is True
    await tokens.revoke_token(introspector.db, Actor.operator(), UUID(created["id"]))

    async def refused() -> bool:
        return (await introspector.introspect_json(created["token"])) == INACTIVE

    assert await eventually(refused)


async def test_outbox_replays_a_revoke_missed_by_a_crashed_redis(
    introspector: Introspector, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Redis killed during a revoke and restored with its old (active) entry → still tombstoned."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    await introspector.introspect_json(created["token"])
    key = f"kg:tok:{{{parse_token(created['token']).public_id}}}"
    stale = await redis_client.get(key)
    assert stale is not None
    redis_server.stop()
    held = introspector.db.transaction()
    try:
        assert (await introspector.revoke(alice, created["id"])).status == 204
        # Hold the outbox row (the delivery loop skips locked rows), so the revoke cannot be
        # announced before Redis is back with its old entry.
        await held.start()
        assert len(await introspector.db.fetch("SELECT id FROM revocation_outbox FOR UPDATE")) == 1
    finally:
        redis_server.start()
    # As if Redis came back from a snapshot taken before the revoke.
    restored = aioredis.Redis.from_url(redis_server.url())
    await restored.set(key, stale, ex=60)
    await held.commit()

    async def tombstoned() -> bool:
        raw = await restored.get(key)
        return raw is not None and cached_state(raw) == "revoked"

    try:
        assert await eventually(tombstoned)
    finally:
        await restored.aclose()
    assert await introspector.introspect_json(created["token"]) == INACTIVE
