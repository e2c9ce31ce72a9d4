"""Announcing revocations: cache tombstone + a message every gateway hears.

Every revoke commits a ``revocation_outbox`` row together with the revocation itself. This module
delivers those rows — right after an API revoke, and from a background loop for revokes made
while Redis was down or from the CLI — by writing the cache tombstone and publishing the token's
public id on :data:`REVOCATION_CHANNEL`. A row is deleted only after Redis accepted both, so a
revoke is announced at least once even across a Redis outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from introspector.cache import TokenCache
from introspector.db import DATABASE_UNAVAILABLE
from keygate_core.background import stop_requested
from keygate_core.redis_keys import REVOCATION_CHANNEL

log = logging.getLogger("keygate.revocation")


class RevocationAnnouncer:
    """Delivers pending revocations from the outbox to Redis."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        cache: TokenCache,
        on_deferred: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._cache = cache
        self._on_deferred = on_deferred
        self._lock = asyncio.Lock()

    async def deliver_pending(self, batch: int = 100) -> int:
        """Announce every pending revocation; return how many were delivered.

        Rows are locked with ``SKIP LOCKED`` so several introspectors share the work; a Redis
        failure rolls the batch back for the next attempt.
        """
        async with self._lock:
            delivered = 0
            while True:
                count = await self._deliver_batch(batch)
                delivered += count
                if count < batch:
                    return delivered

    async def _deliver_batch(self, batch: int) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, public_id FROM revocation_outbox ORDER BY id "
                "LIMIT $1 FOR UPDATE SKIP LOCKED",
                batch,
            )
            if not rows:
                return 0
            try:
                for row in rows:
                    await self._cache.tombstone(row["public_id"])
                    await self._redis.publish(REVOCATION_CHANNEL, row["public_id"])
            except (RedisError, OSError) as exc:
                self._on_deferred()
                log.warning(
                    "revocation announcement deferred: Redis unavailable",
                    extra={"pending": len(rows), "error": type(exc).__name__},
                )
                raise _Deferred from None
            await conn.execute(
                "DELETE FROM revocation_outbox WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
            return len(rows)

    async def deliver_quietly(self) -> None:
        """:meth:`deliver_pending`, treating an unavailable Redis or Postgres as "later"."""
        try:
            await self.deliver_pending()
        except _Deferred:
            pass
        except DATABASE_UNAVAILABLE as exc:
            log.warning("revocation outbox unreachable", extra={"error": type(exc).__name__})

    async def run(self, poll_seconds: float) -> None:
        """Deliver pending revocations forever, every ``poll_seconds``."""
        while True:
            try:
                await self.deliver_quietly()
            except Exception:
                # This loop is what makes revocations survive outages: it must never die,
                # except when its service stops.
                if stop_requested():
                    raise asyncio.CancelledError from None
                log.exception("revocation delivery failed; retrying")
            await asyncio.sleep(poll_seconds)


class _Deferred(Exception):
    """Redis refused; the outbox rows stay for the next attempt."""
