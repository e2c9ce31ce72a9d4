"""Lock-out attacks: nobody's failures make keygate refuse someone else's correct secret.

A token's public id is not secret (the UI shows it), and a well-formed token for it needs only a
public CRC32. The failed-attempt counters exist to cap argon2 work; a secret that the fast keyed
verifier accepts passes whatever they say. The same holds for logins: one address's wrong
passwords never lock the account's owner out at another address. And Redis is not a trust
anchor: a cache entry whose claims were changed is not believed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import redis.asyncio as aioredis

from keygate_core.token_format import generate_token, parse_token
from tests.harness.stack import Introspector, StartIntrospector, StartStack

ARGON2 = "keygate_argon2_verify_duration_seconds_count"
PASSWORD = "correct horse battery staple"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def forge(token: str) -> str:
    """Another well-formed token (valid checksum) with ``token``'s public id."""
    return generate_token(parse_token(token).public_id)[0]


def cache_key(token: str) -> str:
    return f"kg:tok:{{{parse_token(token).public_id}}}"


def sample(metrics: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def with_password(ki: Introspector, email: str) -> None:
    """A person ``email`` whose password is :data:`PASSWORD`."""
    await ki.user(email)
    await ki.db.execute(
        "UPDATE users SET password_hash = $1 WHERE email = $2", ki.hasher.hash(PASSWORD), email
    )


async def login(ki: Introspector, email: str, password: str, address: str) -> int:
    response = await ki.client.post(
        "/sessions",
        json={"email": email, "password": password},
        headers={**ki.headers(), "X-Keygate-Client-Address": address},
    )
    return response.status


async def test_forged_tokens_from_many_addresses_never_lock_out_the_cold_owner(
    start_stack: StartStack, redis_client: aioredis.Redis
) -> None:
    """40 forged tokens for a public id from 40 X-Forwarded-For values leave its cold owner 200."""
    # The attack confirmed on a running stack: before the fix, 10 × 401 then 30 × 429, and the
    # victim's correct token got 429 too_many_attempts once its cache entry had lapsed.
    stack = await start_stack(
        KEYGATE_TRUSTED_PROXIES="127.0.0.1/32", KEYGATE_L1_CACHE_TTL_SECONDS="0"
    )
    ki = stack.introspector
    alice = await ki.user("alice@example.com")
    token = await stack.token_for(alice)
    before = sample(await ki.metrics(), ARGON2)
    statuses: Counter[int] = Counter()
    for i in range(40):
        response = await stack.gateway.get(
            "/x", headers={**bearer(forge(token)), "X-Forwarded-For": f"203.0.113.{i + 1}"}
        )
        statuses[response.status] += 1
    assert statuses == {401: 40}
    # A token created with a verifier: wrong secrets are refused without argon2.
    assert sample(await ki.metrics(), ARGON2) - before == 0

    await redis_client.delete(cache_key(token))  # cold: no Redis entry, no L1 (TTL 0)
    response = await stack.gateway.get(
        "/x", headers={**bearer(token), "X-Forwarded-For": "198.51.100.20"}
    )
    assert response.status == 200, await response.text()
    assert stack.upstream.last.header("X-Keygate-User-Id") == [str(alice.id)]


async def test_a_cache_entry_with_changed_claims_is_not_believed(
    start_stack: StartStack, redis_client: aioredis.Redis
) -> None:
    """Rewriting a cached token's claims in Redis (another user, ORGANIZATION) changes nothing."""
    stack = await start_stack(KEYGATE_L1_CACHE_TTL_SECONDS="0")
    ki = stack.introspector
    alice = await ki.user("alice@example.com")
    admin = await ki.user("admin@example.com", admin=True)
    token = await stack.token_for(alice)
    assert (await stack.gateway.get("/x", headers=bearer(token))).status == 200
    stored = await redis_client.get(cache_key(token))
    assert isinstance(stored, bytes)
    raw = stored.decode()
    start = raw.index("{")
    entry = json.loads(raw[start:])
    entry["claims"].update(user_id=str(admin.id), email=admin.email, scope="ORGANIZATION")
    ttl = await redis_client.ttl(cache_key(token))
    await redis_client.set(cache_key(token), raw[:start] + json.dumps(entry), ex=ttl)

    response = await stack.gateway.get("/x", headers=bearer(token))
    assert response.status == 200
    seen = stack.upstream.last
    assert seen.header("X-Keygate-User-Id") == [str(alice.id)]
    assert seen.header("X-Keygate-Token-Scope") == ["PERSONAL"]
    assert sample(await ki.metrics(), "keygate_cache_entries_rejected_total") == 1


async def test_wrong_passwords_from_other_addresses_never_lock_out_the_owner(
    start_introspector: StartIntrospector,
) -> None:
    """40 wrong passwords for an e-mail from 40 addresses; the owner's own address signs in."""
    ki = await start_introspector()
    await with_password(ki, "alice@example.com")
    statuses = Counter(
        [
            await login(ki, "alice@example.com", f"guess {i}", f"203.0.113.{i + 1}")
            for i in range(40)
        ]
    )
    assert statuses == {401: 40}
    assert await login(ki, "alice@example.com", PASSWORD, "198.51.100.20") == 201

    # From one address, the (e-mail, address) pair is limited: guessing stops there.
    pair = [await login(ki, "alice@example.com", f"again {i}", "203.0.113.200") for i in range(12)]
    assert Counter(pair) == {401: 10, 429: 2}


async def test_logins_are_rate_limited_per_address_successful_or_not(
    start_introspector: StartIntrospector,
) -> None:
    """Every sign-in costs argon2, so an address gets 30 a minute, right passwords included."""
    ki = await start_introspector()
    await with_password(ki, "alice@example.com")
    statuses = [await login(ki, "alice@example.com", PASSWORD, "198.51.100.30") for _ in range(31)]
    assert Counter(statuses) == {201: 30, 429: 1}
    # Another address is not affected.
    assert await login(ki, "alice@example.com", PASSWORD, "198.51.100.31") == 201


async def test_an_ipv6_64_and_an_ipv4_mapped_address_are_one_address(
    start_introspector: StartIntrospector,
) -> None:
    """Sign-ins from one IPv6 /64 share one counter; ``::ffff:a.b.c.d`` counts as ``a.b.c.d``."""
    ki = await start_introspector()
    v6 = [
        await login(ki, f"u{i}@example.com", "wrong", f"2001:db8:1:2::{i + 1:x}") for i in range(30)
    ]
    assert Counter(v6) == {401: 30}
    assert await login(ki, "x@example.com", "wrong", "2001:db8:1:2:ffff::1") == 429
    assert await login(ki, "x@example.com", "wrong", "2001:db8:1:3::1") == 401

    v4 = [await login(ki, f"v{i}@example.com", "wrong", "198.51.100.9") for i in range(29)]
    assert Counter(v4) == {401: 29}
    assert await login(ki, "y@example.com", "wrong", "::ffff:198.51.100.9") == 401
    assert await login(ki, "z@example.com", "wrong", "198.51.100.9") == 429


ROTATED = "rotated-internal-secret-0123456789ab"


async def active_after_rotation(ki: Introspector, token: str, address: str = "") -> bool:
    """``active`` from the introspector that runs with the rotated internal secret."""
    headers = {"X-Keygate-Internal-Secret": ROTATED}
    if address:
        headers["X-Keygate-Client-Address"] = address
    response = await ki.client.post("/introspect", data={"token": token}, headers=headers)
    assert response.status == 200, await response.text()
    active: bool = (await response.json())["active"]
    return active


async def test_after_a_secret_rotation_verifiers_are_refreshed_by_one_argon2_check(
    start_introspector: StartIntrospector, redis_client: aioredis.Redis
) -> None:
    """A verifier made under the old internal secret falls back to argon2 once, then is renewed."""
    before_rotation = await start_introspector()
    alice = await before_rotation.user("alice@example.com")
    token = (await before_rotation.create_ok(alice))["token"]
    assert (await before_rotation.introspect_json(token))["active"]  # cached under the old key

    ki = await start_introspector(KEYGATE_INTERNAL_SECRET=ROTATED)
    old_key_id = await ki.db.fetchval("SELECT secret_verifier_key_id FROM api_token")
    argon2 = sample(await ki.metrics(), ARGON2)
    # The old cache entry is a plain miss (not a rejected one); argon2 runs once and renews.
    assert await active_after_rotation(ki, token)
    assert sample(await ki.metrics(), ARGON2) - argon2 == 1
    assert sample(await ki.metrics(), "keygate_cache_entries_rejected_total") == 0
    assert await ki.db.fetchval("SELECT secret_verifier_key_id FROM api_token") != old_key_id
    await redis_client.delete(cache_key(token))
    for i in range(20):
        assert not await active_after_rotation(ki, forge(token), f"203.0.113.{i + 1}")
    await redis_client.delete(cache_key(token))
    assert await active_after_rotation(ki, token)
    assert sample(await ki.metrics(), ARGON2) - argon2 == 1


async def test_sign_ins_waiting_for_argon2_hold_no_database_connection(
    start_introspector: StartIntrospector,
) -> None:
    """With one pool connection, a burst of sign-ins queued for argon2 does not stall a lookup."""
    # Before, each sign-in held a pool connection while it queued for an argon2 slot, so an
    # introspection needing Postgres waited for every sign-in ahead of it.
    ki = await start_introspector(
        KEYGATE_DATABASE_POOL_SIZE="1", KEYGATE_ARGON2_MAX_CONCURRENCY="1"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    logins = [
        asyncio.create_task(login(ki, f"u{i}@example.com", "wrong", f"203.0.113.{i + 1}"))
        for i in range(20)
    ]
    await asyncio.sleep(0.05)  # the sign-ins are queued
    asked = loop.time()
    assert await ki.introspect_json(generate_token()[0]) == {"active": False}
    lookup = loop.time() - asked
    assert set(await asyncio.gather(*logins)) == {401}
    total = loop.time() - started
    assert lookup < total / 3, (lookup, total)
