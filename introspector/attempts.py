"""Counting wrong secrets, so nobody can make the introspector burn argon2 time.

Only the expensive path is gated: a token whose right secret is cached is checked by HMAC and
never throttled, so an attacker hammering someone's token id cannot lock its owner out once the
token is warm. Counters live in Redis (shared by every introspector) with an in-process fallback
while Redis is unreachable. Verifications under way count as failures until they finish (see
:meth:`FailedAttempts.gate`): otherwise a burst of concurrent wrong secrets would all pass the
check before the first failure was counted, and each would cost an argon2 run.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from keygate_core.redis_keys import failed_address_key, failed_token_key

WINDOW_SECONDS = 60
_LOCAL_MAX_KEYS = 100_000


class FailedAttempts:
    """Fixed-window counters of wrong secrets per token id and per client address."""

    def __init__(self, redis: aioredis.Redis, *, per_token: int, per_address: int) -> None:
        self._redis = redis
        self.per_token = per_token
        self.per_address = per_address
        self._local: OrderedDict[str, tuple[float, int]] = OrderedDict()
        #: Verifications under way in this process, per counter key.
        self._pending: Counter[str] = Counter()

    @staticmethod
    def _keys(public_id: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("token", failed_token_key(public_id))]
        if address:
            keys.append(("address", failed_address_key(address)))
        return keys

    def _limit(self, kind: str) -> int:
        return self.per_token if kind == "token" else self.per_address

    async def blocked(
        self, public_id: str, address: str | None, *, reserved: int = 0
    ) -> str | None:
        """``"token"`` or ``"address"`` when that counter is over its limit, else ``None``.

        Verifications under way in this process count, except the caller's own ``reserved``.
        """
        keys = self._keys(public_id, address)
        # Read what is under way before awaiting Redis: a verification that records its failure
        # and finishes while we wait would otherwise be in neither number.
        pending = [self._pending[key] for _, key in keys]
        counts: list[int] = []
        try:
            for _, key in keys:
                counts.append(int(await self._redis.get(key) or 0))
        except (RedisError, OSError):
            counts = [self._local_count(key) for _, key in keys]
        for (kind, _), count, under_way in zip(keys, counts, pending, strict=True):
            if count + under_way - reserved >= self._limit(kind):
                return kind
        return None

    @contextlib.asynccontextmanager
    async def gate(self, public_id: str, address: str | None) -> AsyncIterator[str | None]:
        """Check the limits for one verification: yields what blocks it (the caller must not
        verify) or ``None``. Until the block ends, the verification counts as a possible
        failure; call :meth:`record_failure` inside the block when it was one.
        """
        keys = [key for _, key in self._keys(public_id, address)]
        # Reserved before the check awaits Redis, so concurrent callers see each other.
        self._pending.update(keys)
        try:
            yield await self.blocked(public_id, address, reserved=1)
        finally:
            self._pending.subtract(keys)
            for key in keys:
                if self._pending[key] <= 0:
                    del self._pending[key]

    async def record_failure(self, public_id: str, address: str | None) -> None:
        """Count one wrong secret against the token id and the address."""
        keys = [key for _, key in self._keys(public_id, address)]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_SECONDS, nx=True)
                await pipe.execute()
        except (RedisError, OSError):
            for key in keys:
                self._local_incr(key)

    def _local_count(self, key: str) -> int:
        started, count = self._local.get(key, (0.0, 0))
        return count if time.monotonic() - started < WINDOW_SECONDS else 0

    def _local_incr(self, key: str) -> None:
        now = time.monotonic()
        started, count = self._local.pop(key, (now, 0))
        if now - started >= WINDOW_SECONDS:
            started, count = now, 0
        self._local[key] = (started, count + 1)
        while len(self._local) > _LOCAL_MAX_KEYS:
            self._local.popitem(last=False)
