"""Per-token request counts by minute, for the admin UI's usage chart.

Counting happens in memory on the request path (a dict increment); a background task adds the
counts to Redis every few seconds in one pipeline, as ``kg:use:{<token id>}:<epoch minute>``
kept for 25 hours. Counts that cannot be written (Redis down) are kept for the next flush.

At most ``max_pending`` token-minutes (:data:`MAX_PENDING`) wait at once (Redis away for long,
a flood of distinct tokens): past that, requests of the token-minutes already waiting are still
counted, those of new ones are not, and the next flush that gets through logs how many were
lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from keygate_core.redis_keys import usage_key

RETENTION_SECONDS = 25 * 3600
MAX_PENDING = 200_000

log = logging.getLogger("keygate.gateway.usage")


class UsageRecorder:
    """Counts bearer requests per token and minute; flushes to Redis in batches."""

    def __init__(self, redis: aioredis.Redis, max_pending: int = MAX_PENDING) -> None:
        self._redis = redis
        self._max_pending = max_pending
        self._pending: Counter[tuple[str, int]] = Counter()
        #: Requests not counted since the last flush that got through (the cap was reached).
        self._dropped = 0
        self._sources: list[Callable[[], None]] = []

    def add_source(self, source: Callable[[], None]) -> None:
        """Call ``source`` first at each flush: it hands the recorder (:meth:`add`) what its
        owner counted meanwhile (the relay's compiled decision keeps its own counts), so that
        the last flush, at shutdown, has every request."""
        self._sources.append(source)

    def record(self, token_id: str) -> None:
        """Count one request now (cheap; safe on the request path)."""
        self.add(token_id, int(time.time()) // 60)

    def add(self, token_id: str, minute: int, requests: int = 1) -> None:
        """Count ``requests`` requests of ``token_id`` in ``minute`` (epoch seconds // 60)."""
        key = (token_id, minute)
        pending = self._pending
        if key in pending or len(pending) < self._max_pending:
            pending[key] += requests
        else:
            self._dropped += requests

    async def flush(self) -> None:
        """Add every pending count to Redis in one round trip."""
        for source in self._sources:
            source()
        if not self._pending:
            return
        batch, self._pending = self._pending, Counter()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (token_id, minute), count in batch.items():
                    key = usage_key(token_id, minute)
                    pipe.incrby(key, count)
                    pipe.expire(key, RETENTION_SECONDS)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            self._pending.update(batch)
            return
        dropped, self._dropped = self._dropped, 0
        if dropped:
            log.warning(
                "usage counts lost: too many tokens waited to be counted",
                extra={"requests": dropped, "limit": self._max_pending},
            )

    async def run(self, interval: float = 5.0) -> None:
        """Flush every ``interval`` seconds until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(interval)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.flush()), 1.0)
