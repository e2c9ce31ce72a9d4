"""The Postgres pool, and which of its errors mean "unavailable" (503) rather than a bug."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs, urlsplit

import asyncpg
from asyncpg.connect_utils import SessionAttribute

from introspector.settings import IntrospectorSettings

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection of its own or one borrowed from the pool; the service layer takes either.
    Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy[Any]
else:
    Connection = asyncpg.Connection

#: Errors after which a connection is dropped, not pooled again: its server cannot take writes
#: (any more) — a standby, or a primary fenced or demoted during a failover — or asyncpg's own
#: state for it is confused (seen after a server died mid-statement: "cannot switch to state
#: 12; another operation (2) is in progress").
NOT_REUSABLE = (asyncpg.ReadOnlySQLTransactionError, asyncpg.exceptions.InternalClientError)

#: Errors that mean Postgres cannot be reached, answered too late, or no server of a multi-host
#: URL takes writes right now (a failover under way): the request gets 503.
DATABASE_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # 57xxx: the server shuts down, crashed, still starts, or cancelled the statement.
    asyncpg.exceptions.OperatorInterventionError,
    # Includes TargetServerAttributeNotMatched: every host of a multi-host URL answered, none
    # of them read-write (no primary yet).
    *NOT_REUSABLE,
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
        bounded = self._acquire_timeout if timeout is None else timeout
        return _DropIfNotReusable(super().acquire(timeout=bounded))


class _DropIfNotReusable:
    """``pool.acquire()``'s context, which closes a connection that met :data:`NOT_REUSABLE`.

    A pooled connection stays bound to its server; after a failover the old primary may run
    on read-only (fenced, or restarted as a standby), and the pool would hand the same
    connection out again and again. Closing it makes the next acquire connect afresh, and
    ``target_session_attrs=read-write`` then picks the new primary.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        self._conn = await self._inner.__aenter__()
        return self._conn

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Any:
        if isinstance(exc, NOT_REUSABLE) and self._conn is not None:
            self._conn.terminate()
        return await self._inner.__aexit__(exc_type, exc, tb)


def writable_server(url: str) -> SessionAttribute | None:
    """The ``target_session_attrs`` that makes a multi-host ``url`` settle on the server that
    takes writes (``None``: the URL's or the environment's own choice stands).

    keygate writes on almost every path, and asyncpg's default for several hosts (``any``, the
    first that answers) could settle on a standby. A URL that says what it wants
    (``target_session_attrs=…``, or ``PGTARGETSESSIONATTRS``) is left alone.
    """
    netloc = urlsplit(url).netloc
    hosts = netloc.rpartition("@")[2]
    chosen = "target_session_attrs" in parse_qs(urlsplit(url).query)
    if "," not in hosts or chosen or os.environ.get("PGTARGETSESSIONATTRS"):
        return None
    return SessionAttribute.read_write


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
        target_session_attrs=writable_server(settings.database_url),
    )
    await pool
    return pool
