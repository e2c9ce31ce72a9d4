"""The per-token limiter: one contract for the Redis and the local bucket, then Redis specifics.

Every Redis bucket here talks to the test's real Redis; outages are real (the server is killed
or SIGSTOPped), never mocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.pipeline.limit import (
    LocalTokenBucket,
    RateDecision,
    RateLimiter,
    RedisTokenBucket,
)
from tests.harness.servers import RedisServer

# Short enough that a dead or black-holed Redis degrades quickly, long enough for a loaded CI box.
FAULT_TIMEOUT = 0.2
# Only so that a regression fails the test instead of hanging the run; not a latency check.
HANG_GUARD = 30.0


def _client(url: str, *, max_connections: int = 50, timeout: float | None = None) -> aioredis.Redis:
    """A client as the limiter should get one: a blocking pool, so a burst waits for a
    connection instead of failing with MaxConnectionsError (which would degrade the limiter)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout or 5,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    return aioredis.Redis.from_pool(pool)


async def _drain(limiter: RateLimiter, key: str, limit: int) -> RateDecision:
    """Hit ``key`` until denied (refill while draining may allow a few more than ``limit``)."""
    for _ in range(2 * limit):
        decision = await limiter.hit(key, limit)
        if not decision.allowed:
            return decision
    raise AssertionError(f"{key} was never denied at {limit}/min")


@pytest.fixture(params=["redis", "local"])
async def limiter(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[RateLimiter]:
    """A RedisTokenBucket on the test Redis, or a LocalTokenBucket: the contract holds for both."""
    if request.param == "local":
        yield LocalTokenBucket()
        return
    client = _client(redis_url)
    yield RedisTokenBucket(client, fallback=LocalTokenBucket())
    await client.aclose()


@pytest.fixture
async def fault_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client that gives up on Redis after FAULT_TIMEOUT seconds."""
    client = _client(redis_url, timeout=FAULT_TIMEOUT)
    yield client
    await client.aclose()


# --- the contract: every RateLimiter -------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 5, 50])
async def test_allows_limit_then_denies(limiter: RateLimiter, limit: int) -> None:
    """A full bucket lets exactly `limit` hits through, counting down, then denies."""
    remaining = []
    for _ in range(limit):
        decision = await limiter.hit("tok_a", limit)
        assert decision.allowed and decision.limit == limit and decision.retry_after == 0
        assert not decision.degraded
        remaining.append(decision.remaining)
    assert remaining == list(range(limit - 1, -1, -1))
    denied = await limiter.hit("tok_a", limit)
    assert not denied.allowed and denied.remaining == 0 and not denied.degraded
    assert denied.retry_after >= 1


async def test_denial_reports_wait_times(limiter: RateLimiter) -> None:
    """At 60/min an empty bucket gets its next token in ~1 s and is full in ~60 s."""
    denied = await _drain(limiter, "tok_a", 60)
    assert denied.retry_after == 1
    assert 58 < denied.reset_after <= 60


async def test_fresh_bucket_reset_after_one_token(limiter: RateLimiter) -> None:
    """After one hit on a fresh 60/min bucket, it is full again within about a second."""
    decision = await limiter.hit("tok_a", 60)
    assert 0 < decision.reset_after <= 1


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    """Emptying one key's bucket leaves another key's bucket full."""
    for _ in range(3):
        await limiter.hit("tok_a", 3)
    assert not (await limiter.hit("tok_a", 3)).allowed
    other = await limiter.hit("tok_b", 3)
    assert other.allowed and other.remaining == 2


async def test_refills_over_time(limiter: RateLimiter) -> None:
    """At 600/min (10 tokens/s) an emptied bucket allows a hit again after 0.25 s."""
    await _drain(limiter, "tok_a", 600)
    await asyncio.sleep(0.25)
    assert (await limiter.hit("tok_a", 600)).allowed


@pytest.mark.parametrize("limit", [0, -1])
async def test_rejects_limits_below_one(limiter: RateLimiter, limit: int) -> None:
    """A limit below 1 per minute is a programming error, not a silent allow or deny."""
    with pytest.raises(ValueError, match="limit_per_minute"):
        await limiter.hit("tok_a", limit)


# --- Redis specifics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "max_connections",
    [pytest.param(4, id="queued-on-4-connections"), pytest.param(200, id="all-in-flight")],
)
async def test_concurrent_hits_on_one_instance(redis_url: str, max_connections: int) -> None:
    """200 concurrent hits on a bucket of 50 through one RedisTokenBucket: exactly 50 pass."""
    client = _client(redis_url, max_connections=max_connections)
    try:
        limiter = RedisTokenBucket(client, fallback=LocalTokenBucket())
        decisions = await asyncio.gather(*(limiter.hit("tok_a", 50) for _ in range(200)))
    finally:
        await client.aclose()
    assert sum(d.allowed for d in decisions) == 50
    assert not any(d.degraded for d in decisions)


async def test_concurrent_hits_across_gateways(redis_url: str) -> None:
    """Two buckets with their own clients on one Redis share the bucket: exactly 50 of 200 pass."""
    first, second = _client(redis_url), _client(redis_url)
    try:
        limiters = [
            RedisTokenBucket(first, fallback=LocalTokenBucket()),
            RedisTokenBucket(second, fallback=LocalTokenBucket()),
        ]
        decisions = await asyncio.gather(*(limiters[i % 2].hit("tok_a", 50) for i in range(200)))
    finally:
        await first.aclose()
        await second.aclose()
    assert sum(d.allowed for d in decisions) == 50
    assert not any(d.degraded for d in decisions)


async def test_bucket_is_one_hash_tagged_key_with_ttl(redis_client: aioredis.Redis) -> None:
    """The bucket lives in `kg:rl:{<key>}`, a hash that expires once it would be full again."""
    limiter = RedisTokenBucket(redis_client, fallback=LocalTokenBucket())
    await limiter.hit("tok_a", 60)
    assert await redis_client.keys("*") == [b"kg:rl:{tok_a}"]
    assert await redis_client.type("kg:rl:{tok_a}") == b"hash"
    ttl_ms = await redis_client.pttl("kg:rl:{tok_a}")
    # One token short of full at 60/min is one second away; the TTL adds a second of slack.
    assert 0 < ttl_ms <= 2000


async def test_script_survives_script_flush(redis_client: aioredis.Redis) -> None:
    """After Redis forgets the script (restart, failover), the next hit reloads it."""
    limiter = RedisTokenBucket(redis_client, fallback=LocalTokenBucket())
    await limiter.hit("tok_a", 5)
    await redis_client.script_flush()
    decision = await limiter.hit("tok_a", 5)
    assert decision.remaining == 3 and not decision.degraded


@pytest.mark.parametrize(
    ("fail_open", "allowed", "retry_after"),
    [pytest.param(True, True, 0, id="fail-open"), pytest.param(False, False, 1, id="fail-closed")],
)
async def test_redis_down_degrades_then_recovers(
    fault_client: aioredis.Redis,
    redis_server: RedisServer,
    fail_open: bool,
    allowed: bool,
    retry_after: int,
) -> None:
    """Redis killed: degraded answers (local bucket or denial); back up: Redis again."""
    fallback = LocalTokenBucket()
    limiter = RedisTokenBucket(fault_client, fail_open=fail_open, fallback=fallback)
    assert not (await limiter.hit("tok_a", 5)).degraded
    redis_server.stop()
    decision = await limiter.hit("tok_a", 5)
    assert decision.degraded and decision.allowed is allowed
    assert decision.retry_after == retry_after and decision.limit == 5
    assert len(fallback) == (1 if fail_open else 0)
    redis_server.start()
    recovered = await limiter.hit("tok_a", 5)
    assert not recovered.degraded and recovered.allowed
    assert len(fallback) == (1 if fail_open else 0)


async def test_fail_open_uses_local_bucket_semantics(
    fault_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    """While Redis is down, the local fallback still limits: 3 pass at 3/min, the 4th is denied."""
    limiter = RedisTokenBucket(fault_client, fallback=LocalTokenBucket())
    redis_server.stop()
    decisions = [await limiter.hit("tok_a", 3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(d.degraded for d in decisions)


@pytest.mark.parametrize(("fail_open", "allowed"), [(True, True), (False, False)])
async def test_redis_paused_degrades_within_socket_timeout(
    fault_client: aioredis.Redis, redis_server: RedisServer, fail_open: bool, allowed: bool
) -> None:
    """A black-holed Redis (SIGSTOP) makes the call return degraded instead of hanging."""
    limiter = RedisTokenBucket(fault_client, fail_open=fail_open, fallback=LocalTokenBucket())
    assert not (await limiter.hit("tok_a", 5)).degraded
    redis_server.pause()
    try:
        decision = await asyncio.wait_for(limiter.hit("tok_a", 5), HANG_GUARD)
    finally:
        redis_server.resume()
    assert decision.degraded and decision.allowed is allowed
    assert not (await limiter.hit("tok_a", 5)).degraded
