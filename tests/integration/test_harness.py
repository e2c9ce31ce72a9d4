"""The harness's own servers: private ports, and real faults (stop, restart, pause)."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tests.harness.servers import PostgresServer, RedisServer


def test_servers_never_use_the_standard_ports(
    pg_server: PostgresServer, redis_server: RedisServer
) -> None:
    """The suite's servers are its own, not the machine's on 5432/6379."""
    assert pg_server.port != 5432
    assert redis_server.port != 6379


async def test_postgres_stop_and_restart_keeps_data(
    database_url: str, pg_server: PostgresServer
) -> None:
    """A stopped Postgres refuses connections; after a restart the committed data is back."""
    conn = await asyncpg.connect(database_url)
    await conn.execute("INSERT INTO users (email) VALUES ('kept@example.com')")
    await conn.close()
    pg_server.stop()
    with pytest.raises(OSError, match=r"Connect call failed|Connection refused"):
        await asyncpg.connect(database_url, timeout=2)
    pg_server.start()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT email FROM users") == "kept@example.com"
    finally:
        await conn.close()


async def test_postgres_pause_black_holes_connections(
    database_url: str, pg_server: PostgresServer
) -> None:
    """A paused (SIGSTOP) Postgres accepts TCP but never answers; resume brings it back."""
    conn = await asyncpg.connect(database_url)
    pg_server.pause()
    try:
        with pytest.raises(TimeoutError):
            await conn.fetchval("SELECT 1", timeout=0.5)
    finally:
        pg_server.resume()
    conn.terminate()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_redis_stop_restart_and_pause(redis_url: str, redis_server: RedisServer) -> None:
    """Redis can be killed, restarted, and paused so commands time out instead of failing fast."""
    client = aioredis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        assert await client.ping()
        redis_server.stop()
        with pytest.raises(RedisConnectionError):
            await client.ping()
        redis_server.start()
        assert await client.ping()
        redis_server.pause()
        try:
            with pytest.raises((RedisTimeoutError, RedisConnectionError)):
                await client.ping()
        finally:
            redis_server.resume()
        assert await client.ping()
    finally:
        await client.aclose()
