"""Limit: a token bucket per token — in Redis for the whole fleet, in-process as a fallback.

A bucket holds ``limit_per_minute`` tokens and refills ``limit_per_minute / 60`` tokens a
second; each request takes one. The Redis bucket is one Lua script
(:mod:`gateway.pipeline.limit_redis`), so check-and-take is atomic across gateways, and it reads
the clock with ``TIME`` inside Redis, so gateways with skewed clocks still agree. Keys are
``kg:rl:{<token id>}``: the braces pin each bucket to one Redis Cluster slot. Idle buckets
expire soon after they would be full again.

**Leases.** A gateway takes a bucket's tokens from Redis a few at a time and keeps them briefly
(:mod:`gateway.pipeline.limit_lease`), so most requests need no round trip.
:meth:`RedisTokenBucket.take_now` answers without I/O from the key's live lease, or from a
cached denial while the bucket cannot hold a whole token yet: Redis said when the next one
comes and only refill adds tokens, so the cached denial is exactly what Redis would answer.
Otherwise it returns ``None`` and :meth:`RedisTokenBucket.hit` asks Redis for a lease. One
lease request per key is in flight at a time: hits that arrive meanwhile wait for it, then
take from the lease it brings, and ask again if that has run out.

**Lease size.** A request asks for ``want = claims + extra`` tokens and Redis grants
``min(want, whole tokens in the bucket)``. ``claims`` are the hits already waiting when the
request leaves: each gets a token at once, just as one take per hit would. ``extra`` is this
gateway's demand for the key over the last lease lifetime beyond those hits, at most
``limit // 600`` (a tenth of a second's refill, :func:`~.limit_lease.lease_extra_cap`). Below
600 requests a minute there is no extra: every hit takes exactly one token in Redis, and
``X-RateLimit-Remaining`` counts down exactly as without leases.

**Lifetime and the fleet's guarantee.** A lease's tokens may be used for ``lease_seconds``
(1 s) on the monotonic clock, counted from before its request left, so a request admitted from
a lease took a token that left the Redis bucket at most 1 s before. (A hit that was already
waiting when the request left is admitted when Redis grants its token, as without leases, even
if the answer comes later.) Hence, over any ``w`` seconds, all gateways sharing a bucket admit
at most ``limit + limit / 60 × (w + lease_seconds)`` requests: the bucket's capacity, its
refill over the window, and one lease lifetime of refill as lease slack.
Tokens still unused when a lease expires are dropped, never given back and never used: leases
can make the fleet admit fewer requests than the bucket holds, never more.

**Headers.** A request answered from a lease sees the bucket as Redis left it at the grant plus
the lease's unused tokens, as if they were still in it: ``remaining`` never rises within a
lease, and the time to full is the grant's, less the time since and the unused tokens' refill.

When Redis fails, the limiter either answers from a local bucket (fail open, the default) or
refuses (fail closed); both are flagged ``degraded`` (the pipeline counts those in a metric). The
next call tries Redis again. :func:`rate_limit_headers` tells the client about its bucket.
"""

from __future__ import annotations

import functools
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.pipeline.limit_lease import LEASE_SECONDS, MINUTE_MS, LeaseBook, decision
from gateway.pipeline.limit_lease import RateDecision as RateDecision  # the limiter's answer
from gateway.pipeline.limit_redis import LeaseRequests

# asyncio.TimeoutError is the builtin TimeoutError since Python 3.11.
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


class RateLimiter(Protocol):
    """Takes one request's worth from ``key``'s bucket of ``limit_per_minute``."""

    def take_now(self, key: str, limit_per_minute: int) -> RateDecision | None:
        """The answer :meth:`hit` would give, if it can be had without I/O, else ``None``
        (then ``await hit()``). An answer here has taken its token; do not also call hit.

        Raises :class:`ValueError` when ``limit_per_minute`` is below 1.
        """
        ...

    async def hit(self, key: str, limit_per_minute: int) -> RateDecision:
        """Whether the request may pass, with the bucket's state after it.

        Raises :class:`ValueError` when ``limit_per_minute`` is below 1.
        """
        ...


#: The fields :func:`rate_limit_headers` writes.
RATE_LIMIT_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
)


def rate_limit_headers(decision: RateDecision) -> dict[str, str]:
    """The rate-limit headers of a bearer response, all describing the same bucket.

    ``X-RateLimit-Reset`` and the draft's ``t`` are *seconds from now* until the bucket is
    full again (not an epoch timestamp).
    """
    reset = str(max(0, math.ceil(decision.reset_after)))
    remaining = str(decision.remaining)
    limit, policy = _policy(decision.limit)
    return {
        "X-RateLimit-Limit": limit,
        "X-RateLimit-Remaining": remaining,
        "X-RateLimit-Reset": reset,
        "RateLimit-Policy": policy,
        "RateLimit": f'"per-token";r={remaining};t={reset}',
    }


_LINES = (
    b"X-RateLimit-Limit: %d\r\nX-RateLimit-Remaining: %d\r\nX-RateLimit-Reset: %d\r\n"
    b'RateLimit-Policy: "per-token";q=%d;w=60\r\nRateLimit: "per-token";r=%d;t=%d\r\n'
)


def rate_limit_lines(decision: RateDecision) -> bytes:
    """:func:`rate_limit_headers` as field lines of a head, made in one step (the relay's)."""
    reset = max(0, math.ceil(decision.reset_after))
    remaining, limit = decision.remaining, decision.limit
    return _LINES % (limit, remaining, reset, limit, remaining, reset)


@functools.lru_cache(maxsize=1024)
def _policy(limit: int) -> tuple[str, str]:
    # The same few limits on every request: their text is made once.
    return str(limit), f'"per-token";q={limit};w=60'


def _check_limit(limit_per_minute: int) -> None:
    if limit_per_minute < 1:
        raise ValueError(f"limit_per_minute must be at least 1, got {limit_per_minute}")


class LocalTokenBucket:
    """The same bucket in this process only, on the monotonic clock.

    Holds at most ``max_keys`` buckets; the least recently used one is forgotten first (a
    forgotten bucket comes back full). Not shared between gateways or workers.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self._max_keys = max_keys
        # key -> (tokens, monotonic ms of the last update)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        """How many buckets are held right now."""
        return len(self._buckets)

    async def hit(self, key: str, limit_per_minute: int) -> RateDecision:
        """See :meth:`RateLimiter.hit`; never degraded."""
        return self.take_now(key, limit_per_minute)

    def take_now(self, key: str, limit_per_minute: int) -> RateDecision:
        """See :meth:`RateLimiter.take_now`: this bucket always answers at once."""
        _check_limit(limit_per_minute)
        now = time.monotonic() * 1000
        per_ms = limit_per_minute / MINUTE_MS
        tokens, ts = self._buckets.pop(key, (float(limit_per_minute), now))
        tokens = min(limit_per_minute, tokens + (now - ts) * per_ms)
        allowed = tokens >= 1
        retry_ms = 0
        if allowed:
            tokens -= 1
        else:
            retry_ms = math.ceil((1 - tokens) / per_ms)
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        full_ms = math.ceil((limit_per_minute - tokens) / per_ms)
        return decision(allowed, limit_per_minute, math.floor(tokens), full_ms, retry_ms)


class RedisTokenBucket:
    """The fleet-wide bucket in Redis, leased out to this gateway, with a fallback while
    Redis is unavailable.

    On a Redis error or timeout (bounded by the client's ``socket_timeout``) it answers from
    ``fallback`` when ``fail_open``, or denies with ``retry_after=1`` otherwise; either answer
    has ``degraded=True``. Nothing is remembered about the failure: every call that finds no
    lease tries Redis first. Leases already held keep answering while Redis is down.

    Lease requests made in the same event-loop iteration share one pipeline (one round trip)
    instead of taking a connection each. ``on_round_trip`` is called once per round trip to
    Redis (for a metric); ``lease_seconds`` is a lease's lifetime (the module docstring says
    what it bounds); ``max_keys`` bounds the leases held, least recently used first out (a
    forgotten key's next lease starts small again, so a few thousand busy keys need no more).

    Give it a client with a ``socket_timeout`` (without one a black-holed Redis stalls the
    request) and a :class:`~redis.asyncio.BlockingConnectionPool`: redis-py's default pool
    raises ``MaxConnectionsError`` beyond 100 connections, which would degrade a healthy
    limiter under a burst instead of queueing it.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        fail_open: bool = True,
        fallback: LocalTokenBucket | None = None,
        on_round_trip: Callable[[], None] | None = None,
        lease_seconds: float = LEASE_SECONDS,
        max_keys: int = 10_000,
    ) -> None:
        self._fail_open = fail_open
        self._fallback = fallback if fallback is not None else LocalTokenBucket()
        self._book = LeaseBook(lease_seconds, max_keys)
        self._requests = LeaseRequests(redis, self._book, on_round_trip)

    def take_now(self, key: str, limit_per_minute: int) -> RateDecision | None:
        """See :meth:`RateLimiter.take_now`: from this gateway's live lease of the bucket, or
        its cached denial while the bucket cannot hold a token yet; never degraded."""
        if limit_per_minute < 1:  # checked here first: this runs on every bearer request
            _check_limit(limit_per_minute)
        return self._book.take(key, limit_per_minute, time.monotonic())

    async def hit(self, key: str, limit_per_minute: int) -> RateDecision:
        """See :meth:`RateLimiter.hit`; ``key`` must already be safe to show (a token id).

        :meth:`take_now` first; otherwise waits for a lease request for ``key``: one that has
        not left yet, which asks a token for this hit and answers it as Redis did (a token,
        or a denial when the bucket ran dry); else the one in flight, then takes from the lease
        it brings or asks again.
        """
        decision = self.take_now(key, limit_per_minute)
        if decision is not None:
            return decision
        self._book.count(key, limit_per_minute, time.monotonic())
        try:
            while True:
                claim = await self._requests.land(key, limit_per_minute)
                now = time.monotonic()
                answer = self._book.take(key, limit_per_minute, now, count=False, claim=claim)
                if answer is not None:
                    return answer
        except _REDIS_FAILURES:
            if not self._fail_open:
                return RateDecision(False, limit_per_minute, 0, 1.0, 1, degraded=True)
            local = self._fallback.take_now(key, limit_per_minute)
            return local._replace(degraded=True)
