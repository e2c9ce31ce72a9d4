"""Waking the outbox delivery loop the moment a writer commits an outbox row.

Both outboxes (``revocation_outbox``, ``session_purge_outbox``) NOTIFY :data:`OUTBOX_CHANNEL` on
insert (a trigger, migration 0006), so the notification arrives when the writer's transaction
commits. The API delivers its own rows right after committing; this matters for writers without
Redis — the ``keygate`` CLI — whose revocations would otherwise wait for the next poll. The poll
stays as the fallback, and re-opens the listening connection when it died (a failover, a
restart) or now talks to a read-only server (a switchover). It is a connection of its own, not
the pool's, because a pooled connection is reset (``UNLISTEN *``) whenever it goes back to the
pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from introspector.db import DATABASE_UNAVAILABLE, writable_server
from introspector.settings import IntrospectorSettings

#: The channel the migration's trigger notifies (see 0006_user_lifecycle.sql).
OUTBOX_CHANNEL = "keygate_outbox"

#: The listening connection's ``application_name`` (so operators can tell it in
#: ``pg_stat_activity``).
LISTENER_NAME = "keygate-outbox-listener"

log = logging.getLogger("keygate.revocation")


class OutboxWakeup:
    """A LISTEN connection that sets ``event`` whenever an outbox row is committed."""

    def __init__(self, settings: IntrospectorSettings, event: asyncio.Event) -> None:
        self._url = settings.database_url
        self._timeout = settings.database_timeout_ms / 1000
        self._event = event
        self._conn: asyncpg.Connection | None = None

    @property
    def listening(self) -> bool:
        """Whether a live connection is listening right now."""
        return self._conn is not None and not self._conn.is_closed()

    async def ensure(self) -> None:
        """(Re-)open the listening connection when there is none; quietly retry later when
        Postgres cannot be reached. A fresh connection also wakes the loop once, since a row
        committed while nobody listened was announced to nobody."""
        if self.listening and await self._on_writable_server():
            return
        await self.close()
        try:
            conn = await asyncpg.connect(
                self._url,
                timeout=self._timeout,
                target_session_attrs=writable_server(self._url),
                server_settings={"application_name": LISTENER_NAME},
            )
            await conn.add_listener(OUTBOX_CHANNEL, self._notified)
        except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as exc:
            log.warning("outbox listener not connected", extra={"error": type(exc).__name__})
            return
        self._conn = conn
        self._event.set()

    async def _on_writable_server(self) -> bool:
        """Whether the listening connection still talks to the server that takes writes: after
        a switchover the fenced old primary keeps it open, but the writers' NOTIFYs now happen
        on the new primary."""
        assert self._conn is not None
        try:
            read_only = await self._conn.fetchval(
                "SELECT current_setting('transaction_read_only')", timeout=self._timeout
            )
        except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError):
            return False
        return bool(read_only == "off")

    def _notified(self, *_: Any) -> None:
        self._event.set()

    async def close(self) -> None:
        """Close the listening connection, if any."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)
