"""``last_used_at``, recorded off the request path and written in batches.

Introspection only notes "token X was used at T" in memory; a background task writes all pending
notes in one statement every few seconds, and once more at shutdown. A failed write keeps the
notes for the next flush.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from uuid import UUID

import asyncpg

from introspector.db import DATABASE_UNAVAILABLE
from keygate_core.background import stop_requested

log = logging.getLogger("keygate.last_used")

_FLUSH_SQL = """
    UPDATE api_token AS t SET last_used_at = v.used_at
    FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, used_at)
    WHERE t.id = v.id AND (t.last_used_at IS NULL OR t.last_used_at < v.used_at)
"""


class LastUsedRecorder:
    """Collects token uses in memory and writes them in batches."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._pending: dict[UUID, datetime] = {}

    def record(self, token_id: UUID, at: datetime) -> None:
        """Note a use; cheap and synchronous, safe on the request path."""
        previous = self._pending.get(token_id)
        if previous is None or previous < at:
            self._pending[token_id] = at

    async def flush(self) -> int:
        """Write every pending use in one statement; return how many tokens it covered."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(_FLUSH_SQL, list(batch), list(batch.values()))
        except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as exc:
            for token_id, at in batch.items():
                self.record(token_id, at)
            log.warning("last_used_at flush deferred", extra={"error": type(exc).__name__})
            return 0
        return len(batch)

    async def run(self, interval: float) -> None:
        """Flush every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception:
                if stop_requested():
                    raise asyncio.CancelledError from None
                log.exception("last_used_at flush failed; retrying")
