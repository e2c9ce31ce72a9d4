"""Each person's local sessions, indexed so that all of them can be ended at once.

A session record is keyed by a digest of its cookie (:func:`keygate_core.redis_keys.session_key`),
so nothing can find a person's sessions from the person alone. Login therefore also adds the
record's key to the set :func:`~keygate_core.redis_keys.user_sessions_key`, which outlives every
session in it (its expiry is pushed to the session TTL at each login). Ending a person's sessions
(deactivation, a new password) deletes every indexed record, then the index. Every command names
one key, in a pipeline without a transaction: Redis Cluster splits it per node.
"""

from __future__ import annotations

from uuid import UUID

import redis.asyncio as aioredis

from keygate_core.redis_keys import user_sessions_key


class SessionIndex:
    """Adds, removes and purges the sessions of one person."""

    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def add(self, user_id: UUID | str, record_key: str) -> None:
        """Remember that ``record_key`` is one of ``user_id``'s sessions."""
        index = user_sessions_key(str(user_id))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(index, record_key)
            pipe.expire(index, self._ttl)
            await pipe.execute()

    async def remove(self, user_id: UUID | str, record_key: str) -> None:
        """Forget one session (it was ended on its own, e.g. by logout)."""
        await self._redis.srem(user_sessions_key(str(user_id)), record_key)

    async def purge(self, user_id: UUID | str) -> int:
        """End every session of ``user_id``; return how many records were deleted."""
        index = user_sessions_key(str(user_id))
        members = await self._redis.smembers(index)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in members:
                pipe.delete(key)
            pipe.delete(index)
            results = await pipe.execute()
        return sum(int(r) for r in results[:-1])
