"""Shared fixtures: one real Postgres and one real Redis per test run, a clean slate per test.

Postgres: the session starts a private cluster, migrates a template database once, and each test
gets its own database cloned from that template (``CREATE DATABASE ... TEMPLATE``), dropped
afterwards. Redis: the session starts a private server and each test starts from ``FLUSHALL``.
Fault-injection tests use ``pg_server`` / ``redis_server`` to stop, start, pause and resume them;
the per-test fixtures bring a server back up before cleaning, so one test's fault never leaks
into the next.

A server that cannot start fails the tests that need it — it never skips them. The fixtures
that start keygate itself on these servers are a plugin, :mod:`tests.harness.fixtures`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
import redis.asyncio as aioredis

from introspector.hashing import Argon2Params, SecretHasher
from introspector.migrate import migrate
from tests.harness.servers import PostgresServer, RedisServer, ServerUnavailable

if TYPE_CHECKING:  # the plugin below: imported by pytest, which rewrites it
    from tests.harness.run_summary import RunNotes

# Fixtures shared by several test folders; pytest takes plugins only from the top conftest.
pytest_plugins = ["tests.harness.fixtures", "tests.harness.run_summary"]

TEMPLATE_DB = "keygate_template"


def _base_dir(name: str) -> Path:
    # Not pytest's tmp_path: its parent is private to root, and Postgres runs as `postgres`.
    path = Path(tempfile.mkdtemp(prefix=f"keygate-test-{name}-"))
    path.chmod(path.stat().st_mode | stat.S_IRWXU | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP)
    return path


@pytest.fixture(scope="session")
def pg_server(run_notes: RunNotes) -> Iterator[PostgresServer]:
    """A private Postgres for the whole run, with a migrated template database."""
    base = _base_dir("pg")
    try:
        server = PostgresServer(base)
        server.init()
        server.start()
    except (ServerUnavailable, subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"cannot start the test Postgres server: {exc}", pytrace=False)

    async def prepare() -> str:
        conn = await asyncpg.connect(server.url())
        try:
            await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
            version: str = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        conn = await asyncpg.connect(server.url(TEMPLATE_DB))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return version

    version = asyncio.run(prepare())
    run_notes.server(
        f"PostgreSQL {version} started from {server.bindir} on 127.0.0.1:{server.port}"
    )
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(run_notes: RunNotes) -> Iterator[RedisServer]:
    """A private Redis for the whole run."""
    base = _base_dir("redis")
    try:
        server = RedisServer(base)
        server.start()
    except (ServerUnavailable, OSError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"cannot start the test Redis server: {exc}", pytrace=False)
    version = subprocess.run(
        [server.binary, "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2]
    run_notes.server(
        f"Redis {version.removeprefix('v=')} started from {server.binary} "
        f"on 127.0.0.1:{server.port}"
    )
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def _ensure_up(server: PostgresServer | RedisServer) -> None:
    """Undo whatever fault a test injected."""
    if server.running:
        server.resume()
    else:
        server.start()


async def _admin_execute(pg: PostgresServer, sql: str) -> None:
    conn = await asyncpg.connect(pg.url())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def database_url(pg_server: PostgresServer, run_notes: RunNotes) -> AsyncIterator[str]:
    """A fresh, fully migrated database of this test's own."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _admin_execute(pg_server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    run_notes.databases += 1
    yield pg_server.url(name)
    _ensure_up(pg_server)
    await _admin_execute(pg_server, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
async def empty_database_url(pg_server: PostgresServer) -> AsyncIterator[str]:
    """A fresh database with no keygate schema at all (for migration tests)."""
    name = f"e_{uuid.uuid4().hex[:16]}"
    await _admin_execute(pg_server, f"CREATE DATABASE {name}")
    yield pg_server.url(name)
    _ensure_up(pg_server)
    await _admin_execute(pg_server, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this test's database."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close(timeout=5)


@pytest.fixture
async def redis_url(redis_server: RedisServer, run_notes: RunNotes) -> AsyncIterator[str]:
    """The test Redis, emptied before the test."""
    _ensure_up(redis_server)
    client = aioredis.Redis.from_url(redis_server.url())
    await client.flushall()
    await client.aclose()
    run_notes.redis_resets += 1
    yield redis_server.url()
    _ensure_up(redis_server)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the test Redis."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def hasher() -> Iterator[SecretHasher]:
    """argon2id at keygate's production defaults (OWASP m=19 MiB, t=2, p=1)."""
    h = SecretHasher(Argon2Params(), max_concurrency=2)
    yield h
    h.close()


@pytest.fixture
def keygate_env(database_url: str, redis_url: str) -> dict[str, str]:
    """A process environment that points keygate at this test's servers and nothing else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    env.update({"KEYGATE_DATABASE_URL": database_url, "KEYGATE_REDIS_URL": redis_url})
    return env
