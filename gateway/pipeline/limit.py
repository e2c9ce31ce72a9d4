"""Limit: a token bucket per token — in Redis for the whole fleet, in-process as a fallback.

A bucket holds ``limit_per_minute`` tokens and refills ``limit_per_minute / 60`` tokens a
second; each request takes one. The Redis bucket is one Lua script, so check-and-take is atomic
across gateways, and it reads the clock with ``TIME`` inside Redis, so gateways with skewed
clocks still agree. Keys are ``kg:rl:{<token id>}``: the braces pin each bucket to one Redis
Cluster slot. Idle buckets expire soon after they would be full again.

When Redis fails, the limiter either answers from a local bucket (fail open, the default) or
refuses (fail closed); both are flagged ``degraded`` (the pipeline counts those in a metric). The
next call tries Redis again. :func:`rate_limit_headers` tells the client about its bucket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from keygate_core.redis_keys import rate_limit_key

MINUTE_MS = 60_000

# Effects replication (the default since Redis 5, the only mode since 7) ships the HSET to
# replicas rather than the script, which is what lets a script read the non-deterministic TIME.
# The clock is in milliseconds: PEXPIRE wants them, and finer steps buy nothing at per-minute
# rates. max(0, ...) because a new primary after a failover may have a clock that is behind.
_BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local per_ms = capacity / 60000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * per_ms)
local allowed = 0
local retry_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry_ms = math.ceil((1 - tokens) / per_ms)
end
local full_ms = math.ceil((capacity - tokens) / per_ms)
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], full_ms + 1000)
return {allowed, math.floor(tokens), full_ms, retry_ms}
"""

# asyncio.TimeoutError is the builtin TimeoutError since Python 3.11.
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class RateDecision:
    """One limiter answer, describing the bucket after this request.

    ``remaining`` is whole tokens left (≥ 0); ``reset_after`` is seconds until the bucket is
    full again; ``retry_after`` is whole seconds until the next token when denied (≥ 1), 0 when
    allowed; ``degraded`` means Redis was unavailable and the answer did not come from it.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: int
    degraded: bool = False


class RateLimiter(Protocol):
    """Takes one request's worth from ``key``'s bucket of ``limit_per_minute``."""

    async def hit(self, key: str, limit_per_minute: int) -> RateDecision:
        """Whether the request may pass, with the bucket's state after it.

        Raises :class:`ValueError` when ``limit_per_minute`` is below 1.
        """
        ...

    def take_now(self, key: str, limit_per_minute: int) -> RateDecision | None:
        """The answer when it needs no I/O, else ``None`` (then :meth:`hit` asks)."""
        ...


def rate_limit_headers(decision: RateDecision) -> dict[str, str]:
    """The rate-limit headers of a bearer response, all describing the same bucket.

    ``X-RateLimit-Reset`` and the draft's ``t`` are *seconds from now* until the bucket is
    full again (not an epoch timestamp).
    """
    reset = max(0, math.ceil(decision.reset_after))
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(reset),
        "RateLimit-Policy": f'"per-token";q={decision.limit};w=60',
        "RateLimit": f'"per-token";r={decision.remaining};t={reset}',
    }


def _check_limit(limit_per_minute: int) -> None:
    if limit_per_minute < 1:
        raise ValueError(f"limit_per_minute must be at least 1, got {limit_per_minute}")


def _decision(
    allowed: bool, limit: int, remaining: int, full_ms: int, retry_ms: int
) -> RateDecision:
    return RateDecision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, remaining),
        reset_after=full_ms / 1000,
        retry_after=0 if allowed else max(1, math.ceil(retry_ms / 1000)),
    )


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

    def take_now(self, key: str, limit_per_minute: int) -> RateDecision | None:
        """See :meth:`RateLimiter.take_now`: a local bucket always answers at once."""
        return self._take_local(key, limit_per_minute)

    async def hit(self, key: str, limit_per_minute: int) -> RateDecision:
        """See :meth:`RateLimiter.hit`; never degraded."""
        return self._take_local(key, limit_per_minute)

    def _take_local(self, key: str, limit_per_minute: int) -> RateDecision:
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
        return _decision(allowed, limit_per_minute, math.floor(tokens), full_ms, retry_ms)


class RedisTokenBucket:
    """The fleet-wide bucket in Redis, with a fallback while Redis is unavailable.

    On a Redis error or timeout (bounded by the client's ``socket_timeout``) it answers from
    ``fallback`` when ``fail_open``, or denies with ``retry_after=1`` otherwise; either answer
    has ``degraded=True``. Nothing is remembered about the failure: every call tries Redis
    first.

    Hits made in the same event-loop iteration share one pipeline (one round trip) instead of
    taking a connection each; under load that is most of the limiter's cost per request.

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
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(_BUCKET_LUA)
        self._fail_open = fail_open
        self._fallback = fallback if fallback is not None else LocalTokenBucket()
        # Hits waiting for the next batch, and the batches on their way to Redis.
        self._queued: list[tuple[str, int, asyncio.Future[list[int]]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def take_now(self, key: str, limit_per_minute: int) -> RateDecision | None:
        """See :meth:`RateLimiter.take_now`."""
        return None

    async def hit(self, key: str, limit_per_minute: int) -> RateDecision:
        """See :meth:`RateLimiter.hit`; ``key`` must already be safe to show (a token id)."""
        _check_limit(limit_per_minute)
        try:
            allowed, remaining, full_ms, retry_ms = await self._take(
                rate_limit_key(key), limit_per_minute
            )
        except _REDIS_FAILURES:
            if not self._fail_open:
                return RateDecision(False, limit_per_minute, 0, 1.0, 1, degraded=True)
            local = await self._fallback.hit(key, limit_per_minute)
            return dataclasses.replace(local, degraded=True)
        return _decision(
            bool(allowed), limit_per_minute, int(remaining), int(full_ms), int(retry_ms)
        )

    def _take(self, key: str, limit_per_minute: int) -> asyncio.Future[list[int]]:
        """Queue one script call for the next batch.

        Every call queued while the event loop runs its other callbacks goes to Redis in one
        pipeline (one round trip, one connection), sent once those callbacks have run. Each
        call is still its own single-key EVALSHA, run atomically by Redis in queue order, so a
        batch decides exactly what the calls one by one would. Batches do not wait for each
        other: a call never waits longer for Redis than its own command's timeout.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        self._queued.append((key, limit_per_minute, future))
        if len(self._queued) == 1:
            loop.call_soon(self._send_queued)
        return future

    def _send_queued(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[str, int, asyncio.Future[list[int]]]]) -> None:
        try:
            results = await self._evalsha_all([(key, limit) for key, limit, _ in batch])
        except asyncio.CancelledError:
            for _, _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # each waiter gets the failure and degrades on its own
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # its request gave up waiting
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _evalsha_all(self, calls: list[tuple[str, int]]) -> list[Any]:
        """The script's answer (or error) for each call, in order, in one round trip; the
        script is loaded again if Redis has forgotten it (restart, failover, SCRIPT FLUSH)."""
        results = await self._evalsha_pipeline(calls)
        if any(isinstance(result, NoScriptError) for result in results):
            self._script.sha = await self._redis.script_load(_BUCKET_LUA)
            results = await self._evalsha_pipeline(calls)
        return results

    async def _evalsha_pipeline(self, calls: list[tuple[str, int]]) -> list[Any]:
        if len(calls) == 1:
            # Alone (light load): a plain command skips the pipeline's own bookkeeping.
            key, limit = calls[0]
            try:
                return [await self._redis.evalsha(self._script.sha, 1, key, limit)]
            except NoScriptError as exc:
                return [exc]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, limit in calls:
                pipe.evalsha(self._script.sha, 1, key, limit)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results
