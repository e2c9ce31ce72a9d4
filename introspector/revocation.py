"""Announcing revocations (cache tombstone + a message every gateway hears) and ending the
sessions of deactivated people.

Every revoke commits a ``revocation_outbox`` row together with the revocation itself, and every
deactivation or password change a ``session_purge_outbox`` row. This module delivers those rows —
right after an API call, at once when a NOTIFY says another writer (the CLI) committed some (see
:mod:`introspector.outbox_wakeup`), and from a polling loop for what Redis missed — by writing
the cache tombstone and publishing the token's public id on :data:`REVOCATION_CHANNEL`, or by
deleting every session of the person. A row is deleted only after Redis accepted the work, so it
is delivered at least once even across a Redis outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from introspector.cache import TokenCache
from introspector.db import DATABASE_UNAVAILABLE
from introspector.outbox_wakeup import OutboxWakeup
from introspector.session_index import SessionIndex
from keygate_core.background import stop_requested
from keygate_core.redis_keys import REVOCATION_CHANNEL

log = logging.getLogger("keygate.revocation")


@dataclass(frozen=True)
class _Outbox:
    """One outbox table: what its rows ask for, and how to take and clear a batch of them."""

    what: str
    select: str
    delete: str


_REVOCATIONS = _Outbox(
    "revocation announcement",
    "SELECT id, public_id FROM revocation_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    "DELETE FROM revocation_outbox WHERE id = ANY($1::bigint[])",
)
_SESSION_PURGES = _Outbox(
    "session purge",
    "SELECT id, user_id FROM session_purge_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    "DELETE FROM session_purge_outbox WHERE id = ANY($1::bigint[])",
)


class RevocationAnnouncer:
    """Delivers pending revocations from the outbox to Redis."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        cache: TokenCache,
        sessions: SessionIndex,
        on_deferred: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._cache = cache
        self._sessions = sessions
        self._on_deferred = on_deferred
        self._lock = asyncio.Lock()
        #: Set by the outbox NOTIFY listener: there is work now, do not wait for the poll.
        self.wake = asyncio.Event()

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
                    break
            while await self._purge_batch(batch) == batch:
                pass
            return delivered

    async def _deliver_batch(self, batch: int) -> int:
        async def announce(rows: list[asyncpg.Record]) -> None:
            for row in rows:
                await self._cache.tombstone(row["public_id"])
                await self._redis.publish(REVOCATION_CHANNEL, row["public_id"])

        return await self._drain(_REVOCATIONS, batch, announce)

    async def _purge_batch(self, batch: int) -> int:
        async def purge(rows: list[asyncpg.Record]) -> None:
            for user_id in {row["user_id"] for row in rows}:
                await self._sessions.purge(user_id)

        return await self._drain(_SESSION_PURGES, batch, purge)

    async def _drain(
        self,
        outbox: _Outbox,
        batch: int,
        deliver: Callable[[list[asyncpg.Record]], Awaitable[None]],
    ) -> int:
        """Deliver up to ``batch`` rows of ``outbox`` and delete them, in one
        transaction: when Redis refuses, the rows stay (unlocked) for the next attempt."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(outbox.select, batch)
            if not rows:
                return 0
            try:
                await deliver(rows)
            except (RedisError, OSError) as exc:
                self._on_deferred()
                log.warning(
                    f"{outbox.what} deferred: Redis unavailable",
                    extra={"pending": len(rows), "error": type(exc).__name__},
                )
                raise _Deferred from None
            await conn.execute(outbox.delete, [r["id"] for r in rows])
            return len(rows)

    async def deliver_quietly(self) -> None:
        """:meth:`deliver_pending`, treating an unavailable Redis or Postgres as "later"."""
        try:
            await self.deliver_pending()
        except _Deferred:
            pass
        except DATABASE_UNAVAILABLE as exc:
            log.warning("revocation outbox unreachable", extra={"error": type(exc).__name__})

    async def run(self, poll_seconds: float, wakeup: OutboxWakeup | None = None) -> None:
        """Deliver pending outbox rows forever: when ``wakeup`` hears of new ones, and every
        ``poll_seconds`` (which also re-opens ``wakeup``'s connection when it died)."""
        try:
            while True:
                self.wake.clear()
                try:
                    if wakeup is not None:
                        await wakeup.ensure()
                    await self.deliver_quietly()
                except Exception:
                    # This loop is what makes revocations survive outages: it must never die,
                    # except when its service stops.
                    if stop_requested():
                        raise asyncio.CancelledError from None
                    log.exception("revocation delivery failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), poll_seconds)
        finally:
            if wakeup is not None:
                await wakeup.close()


class _Deferred(Exception):
    """Redis refused; the outbox rows stay for the next attempt."""
