"""Background loops end when their service stops, even mid-call and even if a library swallows
the cancellation.

The loops are the real ones: the introspector's ``LastUsedRecorder.run`` and
``RevocationAnnouncer.run`` (stopped with ``stop_tasks``, as the introspector does) and the
gateway's ``UsageRecorder.run`` and ``RevocationListener.run``, against the suite's Postgres and
Redis. A library that turns its cancellation into an error of its own is played by asyncpg's
``setup`` hook, which runs inside every ``pool.acquire()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
import redis.asyncio as aioredis
from asyncpg.pool import PoolConnectionProxy

from gateway.revocations import RevocationListener
from gateway.token_cache import L1Cache
from gateway.usage import UsageRecorder
from introspector.cache import TokenCache, derive_cache_mac
from introspector.last_used import LastUsedRecorder
from introspector.revocation import RevocationAnnouncer
from introspector.session_index import SessionIndex
from keygate_core.background import stop_tasks
from tests.harness.servers import RedisServer
from tests.harness.stack import INTERNAL_SECRET

#: What the introspector gives its loops to end (introspector/app.py).
GRACE_SECONDS = 5

LoopStarter = Callable[[asyncpg.Pool, aioredis.Redis], Coroutine[Any, Any, None]]


async def _last_used(pool: asyncpg.Pool, redis: aioredis.Redis) -> None:
    """The last-used recorder's loop with one use to write."""
    recorder = LastUsedRecorder(pool)
    recorder.record(uuid4(), datetime.now(UTC))
    await recorder.run(0.01)


async def _announcer(pool: asyncpg.Pool, redis: aioredis.Redis) -> None:
    """The revocation announcer's loop."""
    cache = TokenCache(redis, derive_cache_mac(INTERNAL_SECRET), 60, 5)
    await RevocationAnnouncer(pool, redis, cache, SessionIndex(redis, 60)).run(0.01)


LOOPS = {"last-used": _last_used, "announcer": _announcer}
#: The table each loop writes first, for the test that holds a lock on it.
TABLES = {"last-used": "api_token", "announcer": "revocation_outbox"}


# Not an OSError: LastUsedRecorder.flush and RevocationAnnouncer.deliver_quietly take OSError
# for "Postgres unavailable" and retry without asking stop_requested(), so a cancellation turned
# into ConnectionError does not stop them today.
class ClientLibraryError(Exception):
    """What some client libraries raise when they are cancelled mid-call."""


@pytest.mark.parametrize("loop", list(LOOPS.values()), ids=list(LOOPS))
async def test_a_loop_stops_although_its_cancellation_became_an_error(
    loop: LoopStarter, database_url: str, redis_client: aioredis.Redis
) -> None:
    """The stop arrives inside a library call that raises its own error: the loop ends, no retry."""
    attempts = 0
    inside = asyncio.Event()

    async def library_call(conn: PoolConnectionProxy, /) -> None:
        nonlocal attempts
        attempts += 1
        inside.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise ClientLibraryError("connection closed") from None

    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=1, setup=library_call)
    try:
        task = asyncio.create_task(loop(pool, redis_client))
        await asyncio.wait_for(inside.wait(), 5)
        await stop_tasks([task], grace_seconds=GRACE_SECONDS)
        assert task.cancelled()
        assert attempts == 1
    finally:
        pool.terminate()


@pytest.mark.parametrize("name", list(LOOPS))
async def test_a_loop_stops_while_its_write_waits_on_a_lock(
    name: str, database_url: str, db: asyncpg.Connection, redis_client: aioredis.Redis
) -> None:
    """The stop arrives while Postgres holds the loop's statement on a lock: it ends at once."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with db.transaction():
            await db.execute(f"LOCK TABLE {TABLES[name]} IN ACCESS EXCLUSIVE MODE")
            task = asyncio.create_task(LOOPS[name](pool, redis_client))
            await asyncio.sleep(0.3)
            assert not task.done()
            await asyncio.wait_for(stop_tasks([task], grace_seconds=GRACE_SECONDS), 1)
            assert task.cancelled()
    finally:
        pool.terminate()


async def test_the_gateway_revocation_listener_stops_with_redis_frozen(
    redis_url: str, redis_server: RedisServer
) -> None:
    """Redis paused (SIGSTOP) under a connected listener: stop() ends it within its second."""
    redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=0.2)
    listener = RevocationListener(redis, L1Cache(10, 10), dead_after=0.5)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        redis_server.pause()
        await asyncio.wait_for(listener.stop(task), 1.5)
        assert task.done()
    finally:
        redis_server.resume()
        await redis.aclose()


async def test_the_gateway_usage_recorder_stops_with_redis_frozen(
    redis_url: str, redis_server: RedisServer
) -> None:
    """Redis paused while counts wait to be written: cancelling the loop ends it within 2 s."""
    redis = aioredis.Redis.from_url(redis_url)
    usage = UsageRecorder(redis)
    usage.record("t-1")
    redis_server.pause()
    try:
        task = asyncio.create_task(usage.run(0.01))
        await asyncio.sleep(0.2)
        task.cancel()
        # What the gateway allows at shutdown (gateway/app.py).
        done, _ = await asyncio.wait({task}, timeout=2.0)
        assert task in done
    finally:
        redis_server.resume()
        await redis.aclose()


async def test_usage_counts_a_failed_flush_kept_are_added_to_later_ones(
    redis_url: str, redis_server: RedisServer
) -> None:
    """Counts Redis did not take stay pending, added to those made meanwhile; the next flush
    writes the sum, so no request of the usage chart is lost or counted twice."""
    redis = aioredis.Redis.from_url(redis_url, socket_timeout=0.2)
    usage = UsageRecorder(redis)
    token_id = f"t-{uuid4()}"
    try:
        usage.record(token_id)
        usage.record(token_id)
        redis_server.pause()
        try:
            flushing = asyncio.create_task(usage.flush())
            await asyncio.sleep(0)  # the flush has taken the two counts and waits on Redis
            usage.record(token_id)  # counted meanwhile
            await flushing  # times out: its two counts go back
        finally:
            redis_server.resume()
        await usage.flush()
        keys = [key async for key in redis.scan_iter(match=f"kg:use:{{{token_id}}}:*")]
        counts = await redis.mget(keys)
        assert sum(int(count or 0) for count in counts) == 3
    finally:
        await redis.aclose()


async def test_usage_counts_past_the_pending_cap_keep_the_tokens_already_waiting(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With as many token-minutes waiting as the recorder holds, a token already waiting is
    still counted; a new one is not, and the flush says how many requests were lost."""
    redis = aioredis.Redis.from_url(redis_url)
    usage = UsageRecorder(redis, max_pending=100)
    run = uuid4()
    waiting, new = f"t-{run}-waiting", f"t-{run}-new"
    if time.time() % 60 > 58:  # all of it in one minute: counts are kept per token and minute
        await asyncio.sleep(61 - time.time() % 60)
    try:
        usage.record(waiting)
        for n in range(1, 100):
            usage.record(f"t-{run}-{n}")
        usage.record(waiting)
        usage.record(new)
        usage.record(new)
        with caplog.at_level("WARNING", logger="keygate.gateway.usage"):
            await usage.flush()
        counted = {
            token: [await redis.get(key) async for key in redis.scan_iter(f"kg:use:{{{token}}}:*")]
            for token in (waiting, new)
        }
        assert counted == {waiting: [b"2"], new: []}
        lost = [r for r in caplog.records if r.getMessage().startswith("usage counts lost")]
        assert [r.__dict__["requests"] for r in lost] == [2]
    finally:
        await redis.aclose()
