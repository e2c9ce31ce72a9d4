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


async def create_pool(settings: IntrospectorSettings) -> asyncpg.Pool:
    """A lazily connecting pool: the process starts even while Postgres is down."""
    timeout = settings.database_timeout_ms / 1000
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=0,
        max_size=settings.database_pool_size,
        timeout=timeout,
        command_timeout=timeout,
        max_inactive_connection_lifetime=60,
    )
    assert pool is not None
    return pool
