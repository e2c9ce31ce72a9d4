"""The Postgres pool, and which of its errors mean "unavailable" (503) rather than a bug."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from introspector.settings import IntrospectorSettings

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection of its own or one borrowed from the pool; the service layer takes either.
    Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy[Any]
else:
    Connection = asyncpg.Connection

#: Errors that mean Postgres cannot be reached or answered too late: the request gets 503.
DATABASE_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


class BoundedWaitPool(asyncpg.Pool):
    """A pool whose ``acquire()`` gives up after ``acquire_timeout`` seconds by default.

    asyncpg waits for a free connection forever; then one slow kind of request (say, creates
    queueing for argon2) makes every other request queue behind it. Giving up raises
    :class:`asyncio.TimeoutError`, one of :data:`DATABASE_UNAVAILABLE`: the request answers
    503 with ``Retry-After`` before it has written anything.
    """

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        """A connection from the pool (``async with``), waiting at most the bounded time."""
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


async def create_pool(settings: IntrospectorSettings) -> asyncpg.Pool:
    """A lazily connecting pool: the process starts even while Postgres is down."""
    timeout = settings.database_timeout_ms / 1000
    pool = BoundedWaitPool(
        settings.database_url,
        acquire_timeout=settings.database_acquire_timeout_ms / 1000,
        min_size=0,
        max_size=settings.database_pool_size,
        max_queries=50000,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        timeout=timeout,
        command_timeout=timeout,
        max_inactive_connection_lifetime=60,
    )
    await pool
    return pool
