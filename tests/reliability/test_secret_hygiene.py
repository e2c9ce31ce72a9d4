"""Secret hygiene after a full run: no token, secret or shared secret anywhere keygate writes.

One scenario exercises every path a token travels — issued by the CLI and the API, used,
throttled, rate limited, revoked, expired, mistyped, guessed, sent in odd places, while Redis and
Postgres go down and come back — against real ``keygate`` processes logging at debug level. Then
every log line (both services, the CLI's stderr, the Postgres and Redis server logs), both
``/metrics`` pages, a ``pg_dump`` of the database, every Redis key and value, and every message
published on Redis are searched for every plaintext that was issued or presented.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from keygate_core.token_format import SCANNER_REGEX, generate_token, parse_token
from tests.harness.figures import Figures
from tests.harness.fixtures import Spawn
from tests.harness.servers import PostgresServer, RedisServer
from tests.harness.stack import API, INTERNAL_SECRET, introspector_env
from tests.harness.upstream import create_upstream
from tests.reliability.rawhttp import exchange, request_bytes
from tests.reliability.services import KEYGATE, base_environment


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def redis_dump(client: aioredis.Redis) -> list[str]:
    """Every key with its whole value, one line each (bytes shown with repr: tokens are
    alphanumeric, so they would appear intact)."""
    lines = []
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
        lines.append(f"{key!r} {kind} {value!r}")
    return lines


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


async def test_no_plaintext_anywhere_after_a_full_run(
    spawn: Spawn,
    database_url: str,
    redis_url: str,
    pg_server: PostgresServer,
    redis_server: RedisServer,
    aiohttp_server: Any,
    tmp_path: Path,
    figures: Figures,
) -> None:
    """Zero hits for any issued or presented token, secret part or the internal secret in
    logs, metrics, a Postgres dump, Redis data or Redis messages."""
    server_logs = {
        "postgres": pg_server.base_dir / "postgres.log",
        "redis": redis_server.base_dir / "redis.log",
    }
    log_offsets = {k: p.stat().st_size if p.exists() else 0 for k, p in server_logs.items()}
    upstream_app, _ = create_upstream()
    upstream = await aiohttp_server(upstream_app)
    env = {
        **introspector_env(database_url, redis_url),
        "KEYGATE_LOG_LEVEL": "debug",
        "KEYGATE_UPSTREAM_URL": str(upstream.make_url("")).rstrip("/"),
        "KEYGATE_RATE_LIMIT_PER_MINUTE": "1000",
    }
    introspector = await spawn("introspector", env)
    gateway = await spawn("gateway", {**env, "KEYGATE_INTROSPECTOR_URL": introspector.url})
    cli_log = tmp_path / "cli.log"
    issued: list[str] = []  # full tokens handed out
    presented: list[str] = []  # plaintexts clients sent that were not issued

    def cli(*args: str) -> str:
        result = subprocess.run(
            [KEYGATE, *args],
            env={**base_environment(), **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        with cli_log.open("a") as log:
            log.write(result.stderr)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    published: list[str] = []
    recorder = asyncio.create_task(record_published(redis_url, published))
    base = gateway.url
    statuses: dict[str, set[int]] = {}
    async with aiohttp.ClientSession() as http:

        async def call(label: str, method: str, path: str, **kwargs: Any) -> Any:
            async with http.request(method, base + path, **kwargs) as response:
                body = await response.read()
                statuses.setdefault(label, set()).add(response.status)
                return response.status, body

        # Issued by the CLI (an admin, so the audit log is readable) and by the API.
        await asyncio.to_thread(cli, "users", "create", "--email", "ops@example.com", "--admin")
        cli_token = await asyncio.to_thread(
            cli, "tokens", "create", "--email", "ops@example.com", "--name", "cli"
        )
        limited = await asyncio.to_thread(
            cli, "tokens", "create", "--email", "ops@example.com", "--name", "ltd",
            "--rate-limit", "2",
        )  # fmt: skip
        issued += [cli_token, limited]
        api_tokens = []
        for name, extra in (
            ("api", {}),
            ("to revoke", {}),
            ("revoked in outage", {}),
            ("short-lived", {"expiresAt": (datetime.now(UTC) + timedelta(seconds=2)).isoformat()}),
            ("never used", {}),
        ):
            status, body = await call(
                "create", "POST", f"{API}/api-tokens", json={"name": name, **extra},
                headers=bearer(cli_token),
            )  # fmt: skip
            assert status == 201, body
            created = json.loads(body)
            api_tokens.append(created)
            issued.append(created["token"])
        api, to_revoke, revoked_in_outage, short, unused = (c["token"] for c in api_tokens)

        # Used every way there is.
        for token in (cli_token, api, to_revoke, revoked_in_outage, short):
            await call("use", "GET", "/x", headers=bearer(token))
            await call("whoami", "GET", f"{API}/whoami", headers=bearer(token))
            await call("forward-auth", "GET", "/_keygate/auth", headers=bearer(token))
        await call("list", "GET", f"{API}/api-tokens", headers=bearer(api))
        await call("audit", "GET", f"{API}/audit-events", headers=bearer(cli_token))
        for _ in range(4):
            await call("rate-limited", "GET", "/x", headers=bearer(limited))
        # Guessed (against a token no cache knows: argon2, then throttled), mistyped, misplaced.
        for _ in range(12):
            guess = generate_token(parse_token(unused).public_id)[0]
            presented.append(guess)
            await call("wrong-secret", "GET", "/x", headers=bearer(guess))
        typo = api[:-1] + ("A" if api[-1] != "A" else "B")
        unknown = generate_token()[0]
        presented += [typo, unknown]
        await call("typo", "GET", "/x", headers=bearer(typo))
        await call("unknown", "GET", "/x", headers=bearer(unknown))
        await call("twice", "GET", "/x", headers=[("Authorization", f"Bearer {api}")] * 2)
        await call("too-long", "GET", "/x", headers=bearer(api + "x" * 2000))
        await call("in-query", "GET", f"{API}/whoami?access_token={api}")
        await call("in-path", "GET", f"{API}/{api}")
        await call("basic", "GET", "/x", headers={"Authorization": f"Basic {api}"})
        port = urlsplit(base).port
        assert port is not None
        for raw in (
            request_bytes("GET", "/x", [("Host", "g"), ("Authorization", f"Bearer {api}\rX: 1")]),
            request_bytes("GET", "/x", [("Host", "g"), ("Authorization", "Bearer " + api * 200)]),
            request_bytes("GET", f"/x?t={api}", [("Host", "g"), ("X-Big", "a" * 9000)]),
        ):
            responses = await exchange(port, raw)
            statuses.setdefault("malformed-http", set()).update(r.status for r in responses)
        # Revoked, normally and while Redis is down; expired; used throughout an outage each.
        status, _ = await call(
            "revoke", "DELETE", f"{API}/api-tokens/{api_tokens[1]['id']}", headers=bearer(api)
        )
        assert status == 204
        await call("revoked", "GET", "/x", headers=bearer(to_revoke))
        redis_server.stop()
        try:
            status, _ = await call(
                "revoke-in-outage", "DELETE", f"{API}/api-tokens/{api_tokens[2]['id']}",
                headers=bearer(api),
            )  # fmt: skip
            assert status == 204
            for token in (cli_token, api, revoked_in_outage, generate_token()[0]):
                await call("redis-down", "GET", "/x", headers=bearer(token))
            await asyncio.sleep(1.2)
        finally:
            redis_server.start()
        await asyncio.sleep(1.5)  # the outbox announces the revoke made during the outage
        for token in (api, cli_token):  # the restarted Redis is empty: warm the caches again
            await call("warm", "GET", "/x", headers=bearer(token))
        await pg_server_outage(pg_server, call, [api, cli_token, generate_token()[0]])
        expiry = datetime.fromisoformat(api_tokens[3]["expiresAt"])
        await asyncio.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds() + 0.2))
        for token in (short, to_revoke, revoked_in_outage, api):
            await call("after", "GET", "/x", headers=bearer(token))

        metrics = [
            await (await http.get(gateway.url + "/_keygate/metrics")).text(),
            await (await http.get(introspector.url + "/metrics")).text(),
        ]
    recorder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await recorder
    client = aioredis.Redis.from_url(redis_url)
    redis_lines = await redis_dump(client)
    await client.aclose()
    for service in (gateway, introspector):
        assert await service.stop() == 0
    dump = await asyncio.to_thread(pg_dump, pg_server, database_url)

    # The run did what it was meant to: every kind of answer happened.
    assert statuses["rate-limited"] >= {200, 429}
    assert statuses["wrong-secret"] >= {401, 429}
    assert statuses["redis-down"] >= {200, 401}
    assert statuses["postgres-down"] >= {200, 503}
    assert statuses["after"] == {200, 401}
    assert 400 in statuses["malformed-http"]
    assert "token_id" in dump and "audit_event" in dump

    corpus = {
        "gateway log": gateway.log_lines(),
        "introspector log": introspector.log_lines(),
        "cli stderr": cli_log.read_text().splitlines(),
        "metrics": "\n".join(metrics).splitlines(),
        "pg_dump": dump.splitlines(),
        "redis data": redis_lines,
        "redis messages": published,
    }
    for name, path in server_logs.items():
        with path.open("rb") as log:
            log.seek(log_offsets[name])
            corpus[f"{name} server log"] = log.read().decode(errors="replace").splitlines()
    secrets = {INTERNAL_SECRET}
    for token in issued + presented:
        secrets.add(token)
        if len(token) == 65:
            secrets.add(token[16:59])  # the 43-character secret part
    scanner = re.compile(SCANNER_REGEX)
    hits = [
        f"{source}: {found_in(line, secrets, scanner)}"
        for source, lines in corpus.items()
        for line in lines
        if scanner.search(line) or any(secret in line for secret in secrets)
    ]
    assert not hits, "\n".join(hits)
    lines_searched = sum(len(lines) for lines in corpus.values())
    assert len(corpus["gateway log"]) > 20 and len(corpus["introspector log"]) > 50
    figures.update(
        plaintexts=len(secrets),
        issued=len(issued),
        presented=len(presented),
        lines_searched=lines_searched,
        **{name.replace(" ", "_"): len(lines) for name, lines in corpus.items()},
        hits=len(hits),
    )


async def pg_server_outage(pg_server: PostgresServer, call: Any, tokens: list[str]) -> None:
    """Postgres stopped while tokens (cached and not) are used, then started again."""
    await asyncio.to_thread(pg_server.stop)
    try:
        for token in tokens:
            await call("postgres-down", "GET", "/x", headers=bearer(token))
    finally:
        await asyncio.to_thread(pg_server.start)


def found_in(line: str, secrets: set[str], scanner: re.Pattern[str]) -> str:
    """The part of ``line`` around the first plaintext in it, for the failure message."""
    match = scanner.search(line)
    start = match.start() if match else min(line.find(s) for s in secrets if s in line)
    return line[max(0, start - 150) : start + 80]


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
