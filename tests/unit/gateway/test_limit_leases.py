"""Leases of the Redis bucket: answers without a round trip, inside the fleet-wide bound.

Every limiter here talks to the test's real Redis; two limiters on two clients stand for two
gateways. The contract every limiter keeps is in tests/integration/test_rate_limit.py.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.metrics import GatewayMetrics
from gateway.pipeline.limit import LocalTokenBucket, RateDecision, RedisTokenBucket
from gateway.pipeline.limit_lease import LEASE_SECONDS, LeaseBook, lease_extra_cap
from gateway.pipeline.limit_redis import LEASE_LUA
from tests.harness.servers import RedisServer


class RoundTrips:
    """An ``on_round_trip`` that counts."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def _client(url: str) -> aioredis.Redis:
    """A client as the gateway builds one: a blocking pool, so bursts queue, never degrade."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=50, timeout=5)
    return aioredis.Redis.from_pool(pool)


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[aioredis.Redis]]:
    """Two clients of the test Redis: the connections of two gateways. The lease script is
    loaded, as a running gateway finds it: the round trips counted are the requests' own,
    whichever test happens to run first on this Redis."""
    pair = [_client(redis_url), _client(redis_url)]
    await pair[0].script_load(LEASE_LUA)
    yield pair
    for client in pair:
        await client.aclose()


def _limiter(client: aioredis.Redis, trips: RoundTrips | None = None) -> RedisTokenBucket:
    return RedisTokenBucket(client, fallback=LocalTokenBucket(), on_round_trip=trips)


async def _hammer(
    limiter: RedisTokenBucket, limit: int, bursts: int, size: int, pause: float = 0.0
) -> list[bool]:
    """``bursts`` rounds, ``pause`` seconds apart, of ``size`` concurrent hits and
    ``size // 4`` take_now calls on ``tok_a``; whether each answer admitted (take_now's
    ``None`` is no answer). None may be degraded."""
    admitted: list[bool] = []
    for _ in range(bursts):
        await asyncio.sleep(pause)
        decisions: list[RateDecision | None] = list(
            await asyncio.gather(*(limiter.hit("tok_a", limit) for _ in range(size)))
        )
        decisions += [limiter.take_now("tok_a", limit) for _ in range(size // 4)]
        assert not any(d.degraded for d in decisions if d is not None)
        admitted += [d.allowed for d in decisions if d is not None]
    return admitted


@pytest.mark.parametrize(
    ("limit", "bursts", "size"),
    [pytest.param(500, 20, 50, id="500-per-min"), pytest.param(6_000, 40, 100, id="6000-per-min")],
)
async def test_two_gateways_never_admit_more_than_the_bucket_allows(
    clients: list[aioredis.Redis], limit: int, bursts: int, size: int
) -> None:
    """Two gateways hammering one bucket for over a second admit at most
    limit + limit/60 × (elapsed + the 1 s lease lifetime), and at least 90 % of the limit."""
    limiters = [_limiter(client) for client in clients]
    pause = 1.2 / bursts  # long enough for refill and for leases to expire
    started = time.monotonic()
    answers = await asyncio.gather(*(_hammer(lim, limit, bursts, size, pause) for lim in limiters))
    elapsed = time.monotonic() - started
    admitted = sum(sum(each) for each in answers)
    assert 2 * bursts * size > limit + limit / 60 * elapsed  # the bucket did run dry
    assert 0.9 * limit <= admitted <= limit + limit / 60 * (elapsed + LEASE_SECONDS)


async def test_hot_key_makes_far_fewer_round_trips_than_hits(
    clients: list[aioredis.Redis],
) -> None:
    """At 10,000,000/min, 10,000 hits in bursts (and take_now calls) are all admitted with
    fewer than 0.01 round trips per decision."""
    trips = RoundTrips()
    limiter = _limiter(clients[0], trips)
    admitted = await _hammer(limiter, 10_000_000, bursts=20, size=500)
    assert all(admitted) and len(admitted) >= 20 * 500
    assert trips.count < 0.01 * len(admitted)


async def test_concurrent_hits_share_one_round_trip(clients: list[aioredis.Redis]) -> None:
    """1,000 hits on a cold key in one event-loop turn are one lease request to Redis."""
    trips = RoundTrips()
    limiter = _limiter(clients[0], trips)
    decisions = await asyncio.gather(*(limiter.hit("tok_a", 600_000) for _ in range(1_000)))
    assert all(d.allowed for d in decisions) and trips.count == 1
    assert sorted(d.remaining for d in decisions) == list(range(599_000, 600_000))


async def test_burst_beyond_the_bucket_is_answered_in_one_round_trip(
    clients: list[aioredis.Redis],
) -> None:
    """6,500 concurrent hits on a full 6,000/min bucket: one lease request answers them all,
    and the hits it had no token for are denied even if the next token (due within 10 ms)
    came before they looked."""
    trips = RoundTrips()
    limiter = _limiter(clients[0], trips)
    decisions = await asyncio.gather(*(limiter.hit("tok_a", 6_000) for _ in range(6_500)))
    assert sum(d.allowed for d in decisions) == 6_000 and trips.count == 1
    assert all(d.retry_after == 1 and d.remaining == 0 for d in decisions if not d.allowed)


async def test_hits_wait_for_the_lease_request_in_flight(
    clients: list[aioredis.Redis], redis_server: RedisServer
) -> None:
    """While a key's lease request is in flight (Redis paused), later hits send nothing and
    wait for it; once it lands they need one more request between them."""
    trips = RoundTrips()
    limiter = _limiter(clients[0], trips)
    await limiter.hit("tok_b", 600_000)  # the pool has a connection: pausing cannot stall a connect
    redis_server.pause()
    try:
        first = asyncio.create_task(limiter.hit("tok_a", 600_000))
        await asyncio.sleep(0.05)
        later = [asyncio.create_task(limiter.hit("tok_a", 600_000)) for _ in range(50)]
        await asyncio.sleep(0.05)
        assert trips.count == 2 and not first.done()
    finally:
        redis_server.resume()
    decisions = await asyncio.gather(first, *later)
    assert all(d.allowed and not d.degraded for d in decisions)
    assert trips.count == 3


async def test_take_now_answers_from_a_lease_only(clients: list[aioredis.Redis]) -> None:
    """take_now is None on a cold key; after demand built a lease it counts down from the
    lease without Redis, as if its tokens were still in the bucket, and is None once it is
    used up."""
    trips = RoundTrips()
    limiter = _limiter(clients[0], trips)
    assert limiter.take_now("tok_a", 6_000) is None
    await asyncio.gather(*(limiter.hit("tok_a", 6_000) for _ in range(10)))
    last = await limiter.hit("tok_a", 6_000)  # 11 hits in the last second: leases 10 more
    assert trips.count == 2
    answers = [limiter.take_now("tok_a", 6_000) for _ in range(11)]
    assert answers[10] is None and trips.count == 2
    leased = [d for d in answers[:10] if d is not None and d.allowed]
    assert [d.remaining for d in leased] == list(range(last.remaining - 1, last.remaining - 11, -1))
    # 21 tokens are out of the bucket, 10 ms each to come back: it is not full for over 100 ms
    # (at 60,000 a minute, 1 ms a token, a busy machine could find it full again by now).
    assert all(0 < d.reset_after <= last.reset_after + 0.1 for d in leased)


async def test_cached_denial_never_outlives_the_buckets_retry_time(
    clients: list[aioredis.Redis],
) -> None:
    """After Redis denies, take_now denies without Redis until the bucket's next token, never
    later; then a hit is allowed again."""
    trips = RoundTrips()
    limiter = _limiter(clients[0], trips)
    for _ in range(700):
        denied = await limiter.hit("tok_a", 600)
        if not denied.allowed:
            break
    assert not denied.allowed and denied.retry_after == 1
    # When Redis will have the next whole token, on this process's monotonic clock.
    tokens, ts_ms = await clients[0].hmget("kg:rl:{tok_a}", ["tokens", "ts"])
    assert tokens is not None and ts_ms is not None
    before = time.monotonic()
    seconds, micros = await clients[0].time()
    redis_now = seconds + micros / 1e6 - (time.monotonic() - before) / 2
    next_token = before + (int(ts_ms) / 1000 + (1 - float(tokens)) / 10 - redis_now)
    trips.count = 0
    last_denied = before
    while True:
        asked = time.monotonic()
        cached = limiter.take_now("tok_a", 600)
        if cached is None:
            break
        assert not cached.allowed and cached.retry_after == 1 and cached.remaining == 0
        last_denied = asked
        await asyncio.sleep(0.001)
    # When each denial was asked for, not when the loop got round to asking again: on a busy
    # machine a 1 ms sleep can last tens of ms.
    assert last_denied <= next_token + 0.005 and trips.count == 0
    await asyncio.sleep(max(0.0, next_token - time.monotonic()) + 0.005)
    assert (await limiter.hit("tok_a", 600)).allowed


@pytest.mark.parametrize("limit", [3, 5, 10, 500])
async def test_small_limits_take_one_token_per_hit_exactly(
    clients: list[aioredis.Redis], limit: int
) -> None:
    """Below 600/min there are no leases: one round trip per hit, exact counts, then denied."""
    trips = RoundTrips()
    limiter = _limiter(clients[0], trips)
    hits = min(limit, 10)
    decisions = [await limiter.hit("tok_a", limit) for _ in range(hits)]
    assert [d.remaining for d in decisions] == list(range(limit - 1, limit - 1 - hits, -1))
    assert all(d.allowed for d in decisions) and trips.count == hits
    assert lease_extra_cap(limit) == 0
    if limit > 10:
        assert limiter.take_now("tok_a", limit) is None  # no lease, and tokens are left
        return
    cached = limiter.take_now("tok_a", limit)  # the last grant left the bucket empty
    denied = await limiter.hit("tok_a", limit)
    for decision in (cached, denied):
        assert decision is not None and not decision.allowed
        assert decision.remaining == 0 and decision.retry_after >= 1
    assert trips.count == hits


async def test_limit_three_counts_down_then_denies_across_gateways(
    clients: list[aioredis.Redis],
) -> None:
    """Limit 3 on two gateways, alternating: remaining 2, 1, 0, then denied on both."""
    first, second = (_limiter(client) for client in clients)
    decisions = [
        await first.hit("tok_a", 3),
        await second.hit("tok_a", 3),
        await first.hit("tok_a", 3),
    ]
    assert [(d.allowed, d.remaining) for d in decisions] == [(True, 2), (True, 1), (True, 0)]
    for limiter in (second, first):
        denied = await limiter.hit("tok_a", 3)
        assert not denied.allowed and denied.retry_after >= 1


async def test_leased_tokens_leave_the_bucket_and_expire_unused(
    clients: list[aioredis.Redis],
) -> None:
    """A lease's tokens are gone from the bucket for other gateways; once the lease expires its
    owner stops using what is left of it and asks Redis again."""
    trips = RoundTrips()
    first = RedisTokenBucket(
        clients[0], fallback=LocalTokenBucket(), on_round_trip=trips, lease_seconds=0.2
    )
    second = _limiter(clients[1])
    await asyncio.gather(*(first.hit("tok_a", 6_000) for _ in range(10)))
    started = time.monotonic()
    leased = await first.hit("tok_a", 6_000)  # takes one, leases 10 more (6,000 // 600)
    other = await second.hit("tok_a", 6_000)
    # Between the two, the bucket refills one token per 10 ms (one at most on an idle machine).
    refilled = math.ceil((time.monotonic() - started) * 6_000 / 60)
    assert leased.remaining - 11 <= other.remaining <= leased.remaining - 11 + refilled
    assert first.take_now("tok_a", 6_000) is not None
    await asyncio.sleep(0.25)
    assert first.take_now("tok_a", 6_000) is None
    before = trips.count
    assert (await first.hit("tok_a", 6_000)).allowed and trips.count == before + 1


async def test_round_trips_feed_the_gateway_metric(clients: list[aioredis.Redis]) -> None:
    """Wired as the gateway wires it, each round trip adds one to the round-trip counter, and
    loading the script into a Redis that does not have it counts too."""
    metrics = GatewayMetrics()
    limiter = RedisTokenBucket(clients[0], on_round_trip=metrics.ratelimit_round_trips.inc)

    def round_trips() -> float | None:
        return metrics.registry.get_sample_value("keygate_gateway_ratelimit_round_trips_total")

    await clients[0].script_flush()
    await limiter.hit("tok_a", 60)
    assert round_trips() == 3  # NOSCRIPT, SCRIPT LOAD, the call again
    await asyncio.gather(*(limiter.hit("tok_b", 60) for _ in range(5)))
    await limiter.hit("tok_c", 60)
    assert round_trips() == 5


async def test_take_now_rejects_limits_below_one(clients: list[aioredis.Redis]) -> None:
    """take_now checks the limit like hit does."""
    with pytest.raises(ValueError, match="limit_per_minute"):
        _limiter(clients[0]).take_now("tok_a", 0)


@pytest.mark.parametrize(
    ("lease_seconds", "max_keys", "named"),
    [(0, 10, "lease_seconds"), (-1.0, 10, "lease_seconds"), (1.0, 0, "max_keys")],
)
def test_lease_book_rejects_bad_settings(lease_seconds: float, max_keys: int, named: str) -> None:
    """A lease that cannot live, or a book that can hold no key, is a configuration error."""
    with pytest.raises(ValueError, match=named):
        LeaseBook(lease_seconds, max_keys)
