"""The limiter's trips to Redis: the lease script, one request in flight per key, batching.

:class:`LeaseRequests` asks Redis for leases (:mod:`gateway.pipeline.limit_lease`) and lands
each answer in the :class:`~gateway.pipeline.limit_lease.LeaseBook`. The requests of one
event-loop turn share one pipeline; :mod:`gateway.pipeline.limit` describes the whole limiter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from gateway.pipeline.limit_lease import LeaseBook, LeaseGrant
from keygate_core.redis_keys import rate_limit_key

# Takes n = min(want, whole tokens) at once; answers n, the whole tokens left, the time to full
# and, when no whole token is left, the time to the next one. With want = 1 it is a plain take.
# Effects replication (the default since Redis 5, the only mode since 7) ships the HSET to
# replicas rather than the script, which is what lets a script read the non-deterministic TIME.
# The clock is in milliseconds: PEXPIRE wants them, and finer steps buy nothing at per-minute
# rates. max(0, ...) because a new primary after a failover may have a clock that is behind.
LEASE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local per_ms = capacity / 60000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * per_ms)
local granted = 0
if tokens >= 1 then
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
end
local retry_ms = 0
if tokens < 1 then
  retry_ms = math.ceil((1 - tokens) / per_ms)
end
local full_ms = math.ceil((capacity - tokens) / per_ms)
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], full_ms + 1000)
return {granted, math.floor(tokens), full_ms, retry_ms}
"""


class _Flight:
    """One lease request for one key: queued, then in flight, then landed (or failed)."""

    __slots__ = ("claims", "error", "landed", "sent")

    def __init__(self) -> None:
        self.claims = 0  # hits that joined before it left: each wants a token from it
        self.sent = False
        self.landed = asyncio.Event()
        self.error: BaseException | None = None


class LeaseRequests:
    """Lease requests to Redis, at most one in flight per key, batched per event-loop turn.

    ``on_round_trip`` is called once per round trip to Redis (a pipeline, a single command,
    or the script's reload), including those that fail.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        book: LeaseBook,
        on_round_trip: Callable[[], None] | None = None,
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(LEASE_LUA)
        self._book = book
        self._on_round_trip = on_round_trip
        self._flights: dict[tuple[str, int], _Flight] = {}
        # Requests waiting for the next batch, and the batches on their way to Redis.
        self._queued: list[tuple[str, int, _Flight]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def land(self, key: str, limit: int) -> bool:
        """Waits until a lease request for ``key`` has landed in the book.

        The request in flight for ``key`` if there is one, else the queued one, else a new
        one. Returns whether this call was a claim on it: joined before it left, so it asked
        a token for this call. Raises the request's Redis failure; the caller then decides on
        its own.
        """
        flight = self._flights.get((key, limit))
        if flight is None:
            flight = self._flights[(key, limit)] = _Flight()
            self._queued.append((key, limit, flight))
            if len(self._queued) == 1:
                asyncio.get_running_loop().call_soon(self._send_queued)
        claim = not flight.sent
        if claim:
            flight.claims += 1
        await flight.landed.wait()
        if flight.error is not None:
            raise flight.error
        return claim

    def _send_queued(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[str, int, _Flight]]) -> None:
        """Sends a batch as one pipeline, lands every answer, then wakes every waiter.

        Each request is still its own single-key EVALSHA, run atomically by Redis. Batches do
        not wait for each other: a request never waits longer for Redis than its own
        command's timeout.
        """
        asked_at = time.monotonic()
        calls = []
        for key, limit, flight in batch:
            flight.sent = True
            want = self._book.want(key, limit, flight.claims, asked_at)
            calls.append((rate_limit_key(key), limit, want))
        try:
            replies = await self._evalsha_all(calls)
        except asyncio.CancelledError:
            self._land(batch, [asyncio.CancelledError()] * len(batch), asked_at)
            raise
        except Exception as exc:  # each waiter gets the failure and degrades on its own
            replies = [exc] * len(batch)
        self._land(batch, replies, asked_at)

    def _land(
        self, batch: list[tuple[str, int, _Flight]], replies: list[Any], asked_at: float
    ) -> None:
        for (key, limit, flight), reply in zip(batch, replies, strict=True):
            if isinstance(reply, BaseException):
                flight.error = reply
            else:
                self._book.grant(key, limit, asked_at, LeaseGrant(*(int(v) for v in reply)))
            # Gone before the waiters wake, so that those who find the lease empty ask anew.
            del self._flights[(key, limit)]
            flight.landed.set()

    async def _evalsha_all(self, calls: list[tuple[str, int, int]]) -> list[Any]:
        """The script's answer (or error) for each call, in order, in one round trip; the
        script is loaded again if Redis has forgotten it (restart, failover, SCRIPT FLUSH)."""
        results = await self._evalsha_pipeline(calls)
        if any(isinstance(result, NoScriptError) for result in results):
            self._round_trip()
            self._script.sha = await self._redis.script_load(LEASE_LUA)
            results = await self._evalsha_pipeline(calls)
        return results

    async def _evalsha_pipeline(self, calls: list[tuple[str, int, int]]) -> list[Any]:
        self._round_trip()
        if len(calls) == 1:
            # Alone (light load): a plain command skips the pipeline's own bookkeeping.
            key, limit, want = calls[0]
            try:
                return [await self._redis.evalsha(self._script.sha, 1, key, limit, want)]
            except NoScriptError as exc:
                return [exc]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, limit, want in calls:
                pipe.evalsha(self._script.sha, 1, key, limit, want)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    def _round_trip(self) -> None:
        if self._on_round_trip is not None:
            self._on_round_trip()
