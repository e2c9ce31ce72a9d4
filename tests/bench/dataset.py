"""The benchmark's data: tokens in Postgres, and verified tokens in the introspector's cache.

Three kinds of token:

* **real** ones: a row with the argon2id hash of their own secret (OWASP parameters), exactly as
  ``keygate tokens create`` makes them. Used where the cold path must run (argon2).
* **warm** ones: a row whose hash is one fixed valid argon2id hash, plus an active entry in the
  introspector's Redis cache written with the introspector's own :class:`TokenCache`, so the
  introspector answers them from Redis as it would any token verified in the last minutes.
  Hashing 100,000 secrets would take an hour of argon2; the requests measured never reach it.
* **filler** rows: inserted in bulk with SQL (random public ids, the fixed hash), only to make
  the table big — nobody ever presents them.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from introspector.cache import TokenCache, derive_cache_mac
from introspector.hashing import Argon2Params, SecretHasher
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.token_format import (
    ALPHABET,
    PREFIX,
    PUBLIC_ID_LENGTH,
    SECRET_LENGTH,
    checksum,
    parse_token,
)

BENCH_EMAIL = "bench@example.com"


@dataclass(frozen=True)
class BenchToken:
    """A token the benchmark presents: plaintext, public id and its row id."""

    plaintext: str
    public_id: str
    secret: str
    token_id: uuid.UUID


def _base62(raw: bytes) -> str:
    # A slight modulo bias is irrelevant here: these secrets protect nothing.
    return "".join(ALPHABET[b % 62] for b in raw)


def make_token(public_id: str | None = None) -> BenchToken:
    """A well-formed token (valid checksum), fast: no per-character ``secrets.choice``."""
    raw = os.urandom(PUBLIC_ID_LENGTH + SECRET_LENGTH)
    public_id = public_id or _base62(raw[:PUBLIC_ID_LENGTH])
    secret = _base62(raw[PUBLIC_ID_LENGTH:])
    body = f"{PREFIX}{public_id}_{secret}"
    return BenchToken(body + checksum(body), public_id, secret, uuid.uuid4())


def make_tokens(count: int) -> list[BenchToken]:
    """``count`` distinct well-formed tokens."""
    tokens = [make_token() for _ in range(count)]
    parse_token(tokens[0].plaintext)  # the shape is right, or fail loudly here
    return tokens


def wrong_secret(token: BenchToken) -> str:
    """A well-formed token with ``token``'s public id and another secret."""
    return make_token(token.public_id).plaintext


async def create_owner(conn: asyncpg.Connection) -> uuid.UUID:
    """The one user every benchmark token belongs to."""
    owner: uuid.UUID = await conn.fetchval(
        "INSERT INTO users (email) VALUES ($1) RETURNING id", BENCH_EMAIL
    )
    return owner


def fixed_hash() -> str:
    """One valid argon2id hash (OWASP parameters) that the warm and filler rows share."""
    hasher = SecretHasher(Argon2Params(), max_concurrency=1)
    try:
        return hasher.hash(make_token().secret)
    finally:
        hasher.close()


async def insert_tokens(
    conn: asyncpg.Connection,
    owner: uuid.UUID,
    tokens: list[BenchToken],
    hashes: list[str],
    name: str,
) -> None:
    """Rows for ``tokens`` with the given hashes."""
    await conn.copy_records_to_table(
        "api_token",
        records=[
            (t.token_id, t.public_id, owner, name, h) for t, h in zip(tokens, hashes, strict=True)
        ],
        columns=["id", "public_id", "user_id", "name", "token_hash"],
    )


async def real_hashes(tokens: list[BenchToken], threads: int = 2) -> list[str]:
    """argon2id hashes of the tokens' secrets with the default (OWASP) parameters."""
    hasher = SecretHasher(Argon2Params(), max_concurrency=threads, hash_concurrency=threads)
    try:
        return list(await asyncio.gather(*(hasher.hash_async(t.secret) for t in tokens)))
    finally:
        hasher.close()


async def fill_table(
    conn: asyncpg.Connection, owner: uuid.UUID, token_hash: str, total_rows: int
) -> float:
    """Add filler rows until ``api_token`` holds ``total_rows``; returns the seconds it took.

    Public ids are 12 hex digits of an md5 (a subset of base62, spread like random ids);
    the rare collision is skipped and made up in the next round.
    """
    started = time.monotonic()
    salt = 0
    while True:
        have: int = await conn.fetchval("SELECT count(*) FROM api_token")
        missing = total_rows - have
        if missing <= 0:
            break
        salt += 1
        await conn.execute(
            """
            INSERT INTO api_token (public_id, user_id, name, token_hash)
            SELECT substr(md5($4 || ':' || g::text), 1, 12), $1, 'filler', $2
            FROM generate_series(1, $3::int) AS g
            ON CONFLICT (public_id) DO NOTHING
            """,
            owner,
            token_hash,
            missing,
            f"filler{salt}-{os.getpid()}-{time.time_ns()}",
        )
    await conn.execute("ANALYZE api_token")
    return time.monotonic() - started


async def prime_cache(
    redis: aioredis.Redis,
    internal_secret: str,
    tokens: list[BenchToken],
    owner: uuid.UUID,
    ttl_seconds: int = 3600,
) -> None:
    """Active entries for ``tokens`` in the introspector's Redis cache, in its own format."""
    now = time.time()
    for start in range(0, len(tokens), 5000):
        async with redis.pipeline(transaction=False) as pipe:
            # A pipeline queues commands; the cache writes into it as into a client.
            cache = TokenCache(pipe, derive_cache_mac(internal_secret), ttl_seconds, 10)
            for token in tokens[start : start + 5000]:
                result = IntrospectionResult(
                    active=True,
                    token_id=str(token.token_id),
                    public_id=token.public_id,
                    user_id=str(owner),
                    email=BENCH_EMAIL,
                    scope="PERSONAL",
                    issued_at=int(now),
                )
                await cache.put_active(token.public_id, token.secret, result, now)
            await pipe.execute()


async def forget_cached(redis: aioredis.Redis, tokens: list[BenchToken]) -> None:
    """Remove the introspector's cache entries for ``tokens`` (the next lookup is a miss)."""
    if tokens:
        await redis.delete(*(f"kg:tok:{{{t.public_id}}}" for t in tokens))
