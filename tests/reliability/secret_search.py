"""Every place keygate writes that a plaintext could end up in, read out as lines, and the search.

The secret-hygiene test reads the services' logs itself; these collect the rest: every Redis key
and value, every message published on Redis, a ``pg_dump`` of the database, and what the
Postgres and Redis servers logged during the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from keygate_core.token_format import SCANNER_REGEX
from tests.harness.servers import PostgresServer, RedisServer


async def redis_dump(url: str) -> list[str]:
    """Every key with its whole value, one line each (bytes shown with repr: tokens are
    alphanumeric, so they would appear intact)."""
    client = aioredis.Redis.from_url(url)
    try:
        return [line async for line in _dump_lines(client)]
    finally:
        await client.aclose()


async def _dump_lines(client: aioredis.Redis) -> AsyncIterator[str]:
    async for key in client.scan_iter(count=1000):
        found = await client.type(key)
        kind = found.decode() if isinstance(found, bytes) else found
        value: Any = None
        if kind == "string":
            value = await client.get(key)
        elif kind == "hash":
            value = await client.hgetall(key)
        elif kind == "list":
            value = await client.lrange(key, 0, -1)
        elif kind == "set":
            value = await client.smembers(key)
        elif kind == "zset":
            value = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await client.xrange(key)
        yield f"{key!r} {kind} {value!r}"


async def record_published(url: str, messages: list[str]) -> None:
    """Append every message published on Redis to ``messages`` until cancelled, subscribing
    again whenever Redis comes back from an outage."""
    while True:
        client = aioredis.Redis.from_url(url)
        pubsub = client.pubsub()
        try:
            await pubsub.psubscribe("*")
            while True:
                message = await pubsub.get_message(timeout=0.2)
                if message is not None:
                    messages.append(repr(message))
        except (OSError, RedisError):
            await asyncio.sleep(0.05)
        finally:
            with contextlib.suppress(OSError, RedisError):
                await pubsub.aclose()
                await client.aclose()


@contextlib.asynccontextmanager
async def published_messages(url: str) -> AsyncIterator[list[str]]:
    """Every message published on Redis while the block runs (see :func:`record_published`)."""
    messages: list[str] = []
    recorder = asyncio.create_task(record_published(url, messages))
    try:
        yield messages
    finally:
        recorder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recorder


def pg_dump(pg_server: PostgresServer, database_url: str) -> str:
    """The whole database as SQL, by the server's own ``pg_dump``."""
    database = urlsplit(database_url)
    where = ["-h", "127.0.0.1", "-p", str(database.port), "-U", pg_server.user]
    return subprocess.run(
        [str(pg_server.bindir / "pg_dump"), *where, database.path.lstrip("/")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


class ServerLogs:
    """What the Postgres and Redis servers log from the moment this is made."""

    def __init__(self, pg_server: PostgresServer, redis_server: RedisServer) -> None:
        self.paths = {
            "postgres": pg_server.base_dir / "postgres.log",
            "redis": redis_server.base_dir / "redis.log",
        }
        self.offsets = {k: p.stat().st_size if p.exists() else 0 for k, p in self.paths.items()}

    def since(self) -> dict[str, list[str]]:
        """The lines each server logged since, as "postgres server log" and "redis server log"."""
        found: dict[str, list[str]] = {}
        for name, path in self.paths.items():
            with path.open("rb") as log:
                log.seek(self.offsets[name])
                found[f"{name} server log"] = log.read().decode(errors="replace").splitlines()
        return found


def plaintexts(shared_secret: str, tokens: list[str]) -> set[str]:
    """What must appear nowhere: the shared secret, each token and each token's secret part."""
    secrets = {shared_secret}
    for token in tokens:
        secrets.add(token)
        if len(token) == 65:
            secrets.add(token[16:59])  # the 43-character secret part
    return secrets


def search(corpus: dict[str, list[str]], secrets: set[str]) -> list[str]:
    """Every line of ``corpus`` holding one of ``secrets`` or anything shaped like a token,
    named by its source and cut to the part around the find."""
    scanner = re.compile(SCANNER_REGEX)
    return [
        f"{source}: {found_in(line, secrets, scanner)}"
        for source, lines in corpus.items()
        for line in lines
        if scanner.search(line) or any(secret in line for secret in secrets)
    ]


def found_in(line: str, secrets: set[str], scanner: re.Pattern[str]) -> str:
    """The part of ``line`` around the first plaintext in it, for the failure message."""
    match = scanner.search(line)
    start = match.start() if match else min(line.find(s) for s in secrets if s in line)
    return line[max(0, start - 150) : start + 80]
