"""Listening for revocations so this gateway's L1 cache forgets revoked tokens at once.

The introspector publishes a revoked token's public id on ``keygate:revocations``. This loop
evicts it from the L1 cache and closes the WebSockets opened with it. After any (re)connect
the whole L1 cache is cleared, because messages published while we were disconnected are lost;
while disconnected, the cache trusts an entry for only a second (see gateway.token_cache).
A paused Redis is detected by pinging: no reply in time means reconnect. On Redis Cluster the
listener subscribes (plain SUBSCRIBE) on the master that serves the channel name's slot, and
asks the cluster for its slot map again before every reconnect, so after a failover it follows
the replica that took over (see :func:`keygate_core.redis_connect.refresh_topology`).

Stopping must never depend on a cancellation arriving: Python 3.11's ``asyncio.wait_for`` can
swallow one when its inner call finishes at the same moment, and a loop that retries on
connection errors would then outlive the service and hang its shutdown. So the loop also
checks a stop flag, and timeouts use ``asyncio.timeout`` (which does not lose cancellations).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.token_cache import L1Cache
from keygate_core.redis_connect import refresh_topology
from keygate_core.redis_keys import REVOCATION_CHANNEL

PING_EVERY = 1.0

log = logging.getLogger("keygate.gateway.revocations")


class RevocationListener:
    """Keeps an L1 cache in step with revocations announced on Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        cache: L1Cache,
        dead_after: float,
        on_revoked: Callable[[str], None] | None = None,
    ) -> None:
        self._redis = redis
        self._cache = cache
        #: Told each revoked public id too (the open WebSockets close theirs).
        self._on_revoked = on_revoked
        self._dead_after = dead_after
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._stopping = False

    async def stop(self, task: asyncio.Task[None]) -> None:
        """End the :meth:`run` task without ever blocking shutdown on Redis."""
        self._stopping = True
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
        if not task.done():
            log.warning("revocation listener still closing its connection at shutdown")

    async def run(self) -> None:
        """Listen until stopped, reconnecting with a short back-off."""
        while not self._stopping:
            try:
                await self._listen()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("revocation channel lost", extra={"error": type(exc).__name__})
            except Exception:
                # Anything else must not end the loop: a dead listener would leave the cache
                # believing it still hears revocations.
                log.exception("revocation listener failed; reconnecting")
            self.connected.clear()
            self._cache.listening = False
            if self._stopping:
                return
            await asyncio.sleep(0.2)

    async def _listen(self) -> None:
        if self.reconnects:
            async with asyncio.timeout(self._dead_after * 4):
                await refresh_topology(self._redis)
        pubsub = self._redis.pubsub()
        try:
            async with asyncio.timeout(self._dead_after):
                await pubsub.subscribe(REVOCATION_CHANNEL)
            self._cache.clear()
            self._cache.listening = True
            self.reconnects += 1
            self.connected.set()
            last_seen = last_ping = time.monotonic()
            while not self._stopping:
                message = await pubsub.get_message(timeout=0.2)
                now = time.monotonic()
                if message is not None:
                    last_seen = now
                    if message["type"] == "message":
                        self._revoked(_text(message["data"]))
                if now - last_ping >= PING_EVERY:
                    async with asyncio.timeout(self._dead_after):
                        await pubsub.ping()
                    last_ping = now
                if now - last_seen > PING_EVERY + self._dead_after:
                    raise TimeoutError("no reply from Redis")
        finally:
            # redis-py's close can swallow cancellation and wait on a dead socket; give it a
            # bounded chance and move on (wait_for would wait for the cancel to finish).
            closing = asyncio.ensure_future(pubsub.aclose())
            await asyncio.wait({closing}, timeout=0.5)

    def _revoked(self, public_id: str) -> None:
        self._cache.evict(public_id)
        if self._on_revoked is not None:
            self._on_revoked(public_id)


def _text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, bytes) else data
