"""Introspection under normal and broken conditions: cache, throttling, outages.

How a revoke reaches the cache and the gateways, outages included, is in ``test_revocation.py``.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from keygate_core.token_format import generate_token, parse_token
from tests.harness.servers import PostgresServer, RedisServer
from tests.harness.stack import Introspector, StartIntrospector

INACTIVE = {"active": False}


def tamper(token: str) -> str:
    """The same token id with another (well-formed) secret."""
    public_id = parse_token(token).public_id
    return generate_token(public_id)[0]


@pytest.mark.parametrize(
    ("token", "status", "field"),
    [
        ("", 400, "token"),
        ("Bearer x", 200, None),
        ("kg_" + "a" * 62, 200, None),
        ("kg_short", 200, None),
        ("kg_ünïcödé", 200, None),
        ("x" * 5000, 400, "body"),
    ],
    ids=["missing", "scheme-inside", "bad-checksum", "short", "non-ascii", "oversized-body"],
)
async def test_malformed_tokens_are_inactive(
    introspector: Introspector, token: str, status: int, field: str | None
) -> None:
    """Malformed tokens are exactly {"active": false}; a missing or oversized body is 400."""
    response = await introspector.introspect(token)
    assert response.status == status
    if status == 200:
        assert await response.json() == INACTIVE
    else:
        assert (await response.json())["field"] == field


async def test_unknown_and_wrong_secret_are_inactive(introspector: Introspector) -> None:
    """An unknown id and a known id with the wrong secret both answer exactly inactive."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    assert await introspector.introspect_json(generate_token()[0]) == INACTIVE
    assert await introspector.introspect_json(tamper(created["token"])) == INACTIVE
    assert (await introspector.introspect_json(created["token"]))["active"] is True


async def test_introspect_needs_a_form_body(introspector: Introspector) -> None:
    """RFC 7662 requires a form body; JSON is refused with 400."""
    response = await introspector.client.post(
        "/introspect", json={"token": "x"}, headers=introspector.headers()
    )
    assert response.status == 400


async def test_cache_holds_an_hmac_never_the_token(
    introspector: Introspector, redis_client: aioredis.Redis
) -> None:
    """After a verification, Redis holds the token id and an HMAC — no plaintext, no secret."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    await introspector.introspect_json(created["token"])
    parts = parse_token(created["token"])
    keys = await redis_client.keys("*")
    assert f"kg:tok:{{{parts.public_id}}}".encode() in keys
    for key in keys:
        value = await redis_client.get(key) if await redis_client.type(key) == b"string" else b""
        blob = f"{key!r}{value!r}"  # tokens are alphanumeric: repr() leaves them intact
        assert created["token"] not in blob
        assert parts.secret not in blob


async def test_cache_ttl_never_outlives_expiry(
    introspector: Introspector, redis_client: aioredis.Redis
) -> None:
    """A token expiring in 5 s is cached for at most 5 s even though the TTL is 60 s."""
    from datetime import UTC, datetime, timedelta

    alice = await introspector.user("alice@example.com")
    expires = datetime.now(UTC) + timedelta(seconds=5)
    created = await introspector.create_ok(alice, expiresAt=expires.isoformat())
    await introspector.introspect_json(created["token"])
    ttl = await redis_client.ttl(f"kg:tok:{{{parse_token(created['token']).public_id}}}")
    assert 0 < ttl <= 5


async def test_warm_token_is_answered_without_postgres(
    introspector: Introspector, pg_server: PostgresServer
) -> None:
    """With Postgres stopped, a cached token still introspects; an uncached one gets 503."""
    alice = await introspector.user("alice@example.com")
    warm = await introspector.create_ok(alice, name="warm")
    cold = await introspector.create_ok(alice, name="cold")
    await introspector.introspect_json(warm["token"])
    pg_server.stop()
    try:
        assert (await introspector.introspect_json(warm["token"]))["active"] is True
        response = await introspector.introspect(cold["token"])
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["reason"] == "unavailable"
        ready = await introspector.client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["checks"]["postgres"] == "unavailable"
    finally:
        pg_server.start()
    assert (await introspector.introspect_json(cold["token"]))["active"] is True


async def test_create_and_revoke_answer_503_when_postgres_is_down(
    introspector: Introspector, pg_server: PostgresServer
) -> None:
    """Writes during a Postgres outage answer 503 (never 500 or a false success)."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    pg_server.stop()
    try:
        assert (await introspector.create(alice)).status == 503
        assert (await introspector.revoke(alice, created["id"])).status == 503
    finally:
        pg_server.start()
    assert (await introspector.introspect_json(created["token"]))["active"] is True


async def test_redis_down_still_answers_correctly(
    introspector: Introspector, redis_server: RedisServer
) -> None:
    """Redis stopped: right secret active, wrong secret and revoked inactive, from Postgres."""
    alice = await introspector.user("alice@example.com")
    good = await introspector.create_ok(alice, name="good")
    revoked = await introspector.create_ok(alice, name="revoked")
    redis_server.stop()
    try:
        assert (await introspector.introspect_json(good["token"]))["active"] is True
        assert await introspector.introspect_json(tamper(good["token"])) == INACTIVE
        assert (await introspector.revoke(alice, revoked["id"])).status == 204
        assert await introspector.introspect_json(revoked["token"]) == INACTIVE
        metrics = await introspector.metrics()
        assert "keygate_introspection_cache_error_total" in metrics
    finally:
        redis_server.start()
    assert (await introspector.introspect_json(good["token"]))["active"] is True


async def test_argon2_is_throttled_per_token_id_but_a_verifier_is_never(
    start_introspector: StartIntrospector,
) -> None:
    """After N wrong secrets for an id, its argon2 verifications get 429; verifier checks never."""
    introspector = await start_introspector(KEYGATE_FAILED_VERIFY_LIMIT_PER_TOKEN="3")
    alice = await introspector.user("alice@example.com")
    legacy = await introspector.legacy_token(alice, "legacy")
    for _ in range(3):
        assert await introspector.introspect_json(tamper(legacy), "198.51.100.7") == INACTIVE
    # An id with no verifier needs argon2, which is now throttled (a documented residue: only
    # tokens from before verifiers that were never used since) ...
    throttled = await introspector.introspect(legacy, "198.51.100.8")
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "60"
    # ... while a token with a verifier never reaches the gate, right or wrong.
    created = await introspector.create_ok(alice, name="other")
    for _ in range(5):
        assert await introspector.introspect_json(tamper(created["token"])) == INACTIVE
    assert (await introspector.introspect_json(created["token"]))["active"] is True


async def test_wrong_secrets_are_throttled_per_address(
    start_introspector: StartIntrospector,
) -> None:
    """One address spraying wrong secrets across many ids is cut off; others are not."""
    introspector = await start_introspector(KEYGATE_FAILED_VERIFY_LIMIT_PER_ADDRESS="3")
    alice = await introspector.user("alice@example.com")
    victims = [await introspector.legacy_token(alice, f"t{i}") for i in range(5)]
    for victim in victims[:3]:
        assert await introspector.introspect_json(tamper(victim), "192.0.2.1") == INACTIVE
    assert (await introspector.introspect(tamper(victims[3]), "192.0.2.1")).status == 429
    assert (await introspector.introspect_json(victims[4], "192.0.2.2"))["active"]


async def test_concurrent_introspections_of_one_token(introspector: Introspector) -> None:
    """Fifty concurrent introspections of a cold token all agree it is active."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    results = await asyncio.gather(
        *(introspector.introspect_json(created["token"]) for _ in range(50))
    )
    assert all(r["active"] is True for r in results)


async def test_rotating_the_internal_secret_does_not_refuse_cached_tokens(
    start_introspector: StartIntrospector,
) -> None:
    """Entries cached under an old secret are ignored (re-verified), never read as mismatches."""
    old = await start_introspector()
    alice = await old.user("alice@example.com")
    created = await old.create_ok(alice)
    assert (await old.introspect_json(created["token"]))["active"] is True  # cached under old
    rotated = await start_introspector(KEYGATE_INTERNAL_SECRET="rotated-secret-" + "r" * 32)
    rotated_headers = {"X-Keygate-Internal-Secret": "rotated-secret-" + "r" * 32}
    response = await rotated.client.post(
        "/introspect", data={"token": created["token"]}, headers=rotated_headers
    )
    assert (await response.json())["active"] is True
