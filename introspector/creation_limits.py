"""Rate and concurrency limits on token creation: each create costs an argon2 hash, so nobody
may ask for many, and many at once may not crowd the database pool.

Fixed one-minute windows per person and per client address, grouped as the failed-attempt
counters group them (:func:`~introspector.attempts.address_bucket`: IPv6 per
``KEYGATE_CLIENT_IPV6_PREFIX``, an IPv4-mapped address as its IPv4 address). Counters live in Redis
so every introspector shares them; while Redis is unreachable this process counts on its own, so
the limit still holds per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from introspector.attempts import address_bucket
from introspector.errors import TooManyRequests, Unavailable
from keygate_core.redis_keys import token_create_key

WINDOW_SECONDS = 60
_LOCAL_MAX_KEYS = 100_000


class CreationLimits:
    """Counts token creations per person and per address; refuses past the limits with 429."""

    def __init__(
        self, redis: aioredis.Redis, *, per_user: int, per_address: int, ipv6_prefix: int = 64
    ) -> None:
        self._redis = redis
        self._ipv6_prefix = ipv6_prefix
        self._limits = {"u": per_user, "a": per_address}
        self._local: OrderedDict[str, tuple[float, int]] = OrderedDict()

    async def admit(self, user_id: UUID, address: str | None) -> None:
        """Count one creation attempt against both limits (refused attempts count too);
        :class:`TooManyRequests` with the seconds left in the window when either is past."""
        subjects = [("u", f"u:{user_id}")]
        if address:
            subjects.append(("a", f"a:{address_bucket(address, self._ipv6_prefix)}"))
        keys = [token_create_key(subject) for _, subject in subjects]
        try:
            counts, ttls = await self._count_in_redis(keys)
        except (RedisError, OSError):
            counts, ttls = self._count_locally(keys)
        for (kind, _), count, ttl in zip(subjects, counts, ttls, strict=True):
            if count > self._limits[kind]:
                who = "this person" if kind == "u" else "this address"
                raise TooManyRequests(
                    f"too many tokens created by {who} in the last minute; retry later",
                    retry_after=max(1, ttl),
                )

    async def _count_in_redis(self, keys: list[str]) -> tuple[list[int], list[int]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS, nx=True)
                pipe.ttl(key)
            replies = await pipe.execute()
        counts = [int(replies[i]) for i in range(0, len(replies), 3)]
        ttls = [int(replies[i]) for i in range(2, len(replies), 3)]
        return counts, ttls

    def _count_locally(self, keys: list[str]) -> tuple[list[int], list[int]]:
        now = time.monotonic()
        counts, ttls = [], []
        for key in keys:
            started, count = self._local.pop(key, (now, 0))
            if now - started >= WINDOW_SECONDS:
                started, count = now, 0
            self._local[key] = (started, count + 1)
            counts.append(count + 1)
            ttls.append(int(WINDOW_SECONDS - (now - started)) + 1)
        while len(self._local) > _LOCAL_MAX_KEYS:
            self._local.popitem(last=False)
        return counts, ttls


class CreationGate:
    """At most ``slots`` token creates in flight in this process; the rest wait up to
    ``timeout`` seconds, then answer 503 (:class:`Unavailable`, ``Retry-After``).

    Without it a flood of creates would line up in the pool's queue, and an introspection that
    needs a connection would wait behind every one of them, even though each holds a
    connection only briefly.
    """

    def __init__(self, slots: int, timeout: float) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._timeout = timeout

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the duration of the block."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self._timeout)
        except TimeoutError:
            raise Unavailable(
                "too many tokens are being created right now; retry shortly"
            ) from None
        try:
            yield
        finally:
            self._slots.release()
