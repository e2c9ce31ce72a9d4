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
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from keygate_core.token_format import generate_token, parse_token
from tests.harness.figures import Figures
from tests.harness.fixtures import Spawn
from tests.harness.servers import PostgresServer, RedisServer
from tests.harness.services import KEYGATE, base_environment
from tests.harness.stack import API, INTERNAL_SECRET, introspector_env
from tests.harness.upstream import create_upstream
from tests.reliability.rawhttp import exchange, request_bytes
from tests.reliability.secret_search import (
    ServerLogs,
    pg_dump,
    plaintexts,
    published_messages,
    redis_dump,
    search,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FullRun:
    """Sends tokens down every path they travel, through a running gateway and the CLI.

    Remembers every plaintext it issued, every one a client presented that was not issued, and
    the statuses answered under each label.
    """

    def __init__(
        self, http: aiohttp.ClientSession, base: str, env: dict[str, str], cli_log: Path
    ) -> None:
        self.http = http
        self.base = base
        self.env = env
        self.cli_log = cli_log
        self.issued: list[str] = []  # full tokens handed out
        self.presented: list[str] = []  # plaintexts clients sent that were not issued
        self.statuses: dict[str, set[int]] = {}
        self.cli_token = self.limited = ""
        #: Tokens created through the API, by name.
        self.created: dict[str, dict[str, Any]] = {}

    def cli(self, *args: str) -> str:
        """``keygate *args`` with the services' environment; its stdout (stderr is kept)."""
        result = subprocess.run(
            [KEYGATE, *args],
            env={**base_environment(), **self.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        with self.cli_log.open("a") as log:
            log.write(result.stderr)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    async def call(self, label: str, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        """One request through the gateway; its status is recorded under ``label``."""
        async with self.http.request(method, self.base + path, **kwargs) as response:
            body = await response.read()
            self.statuses.setdefault(label, set()).add(response.status)
            return response.status, body

    def token(self, name: str) -> str:
        return str(self.created[name]["token"])

    async def issue(self) -> None:
        """Tokens issued by the CLI (an admin, so the audit log is readable) and by the API."""
        await asyncio.to_thread(
            self.cli, "users", "create", "--email", "ops@example.com", "--admin"
        )
        self.cli_token = await asyncio.to_thread(
            self.cli, "tokens", "create", "--email", "ops@example.com", "--name", "cli"
        )
        self.limited = await asyncio.to_thread(
            self.cli, "tokens", "create", "--email", "ops@example.com", "--name", "ltd",
            "--rate-limit", "2",
        )  # fmt: skip
        self.issued += [self.cli_token, self.limited]
        for name, extra in (
            ("api", {}),
            ("to revoke", {}),
            ("revoked in outage", {}),
            ("short-lived", {"expiresAt": (datetime.now(UTC) + timedelta(seconds=2)).isoformat()}),
            ("never used", {}),
        ):
            status, body = await self.call(
                "create", "POST", f"{API}/api-tokens", json={"name": name, **extra},
                headers=bearer(self.cli_token),
            )  # fmt: skip
            assert status == 201, body
            self.created[name] = json.loads(body)
            self.issued.append(self.token(name))

    async def use_every_way(self) -> None:
        """Each token used every way there is, and the rate-limited one past its limit."""
        call, api = self.call, self.token("api")
        for token in (
            self.cli_token,
            api,
            self.token("to revoke"),
            self.token("revoked in outage"),
            self.token("short-lived"),
        ):
            await call("use", "GET", "/x", headers=bearer(token))
            await call("whoami", "GET", f"{API}/whoami", headers=bearer(token))
            await call(
                "forward-auth",
                "GET",
                "/_keygate/auth",
                headers={**bearer(token), "X-Original-URI": "/x"},
            )
        await call("list", "GET", f"{API}/api-tokens", headers=bearer(api))
        await call("audit", "GET", f"{API}/audit-events", headers=bearer(self.cli_token))
        for _ in range(4):
            await call("rate-limited", "GET", "/x", headers=bearer(self.limited))

    async def guess_mistype_misplace(self) -> None:
        """Secrets guessed (for a token no cache knows: refused by its fast verifier, never
        throttled), tokens mistyped, and tokens sent in the wrong places or as malformed HTTP."""
        call, api = self.call, self.token("api")
        for _ in range(12):
            guess = generate_token(parse_token(self.token("never used")).public_id)[0]
            self.presented.append(guess)
            await call("wrong-secret", "GET", "/x", headers=bearer(guess))
        typo = api[:-1] + ("A" if api[-1] != "A" else "B")
        unknown = generate_token()[0]
        self.presented += [typo, unknown]
        await call("typo", "GET", "/x", headers=bearer(typo))
        await call("unknown", "GET", "/x", headers=bearer(unknown))
        await call("twice", "GET", "/x", headers=[("Authorization", f"Bearer {api}")] * 2)
        await call("too-long", "GET", "/x", headers=bearer(api + "x" * 2000))
        await call("in-query", "GET", f"{API}/whoami?access_token={api}")
        await call("in-path", "GET", f"{API}/{api}")
        await call("basic", "GET", "/x", headers={"Authorization": f"Basic {api}"})
        port = urlsplit(self.base).port
        assert port is not None
        for raw in (
            request_bytes("GET", "/x", [("Host", "g"), ("Authorization", f"Bearer {api}\rX: 1")]),
            request_bytes("GET", "/x", [("Host", "g"), ("Authorization", "Bearer " + api * 200)]),
            request_bytes("GET", f"/x?t={api}", [("Host", "g"), ("X-Big", "a" * 9000)]),
        ):
            responses = await exchange(port, raw)
            self.statuses.setdefault("malformed-http", set()).update(r.status for r in responses)

    async def revoke_through_outages(
        self, redis_server: RedisServer, pg_server: PostgresServer
    ) -> None:
        """Revoked normally and while Redis is down; expired; used throughout an outage each."""
        call, api = self.call, self.token("api")
        to_revoke, revoked_in_outage = self.created["to revoke"], self.token("revoked in outage")
        status, _ = await call(
            "revoke", "DELETE", f"{API}/api-tokens/{to_revoke['id']}", headers=bearer(api)
        )
        assert status == 204
        await call("revoked", "GET", "/x", headers=bearer(self.token("to revoke")))
        redis_server.stop()
        try:
            status, _ = await call(
                "revoke-in-outage", "DELETE",
                f"{API}/api-tokens/{self.created['revoked in outage']['id']}",
                headers=bearer(api),
            )  # fmt: skip
            assert status == 204
            for token in (self.cli_token, api, revoked_in_outage, generate_token()[0]):
                await call("redis-down", "GET", "/x", headers=bearer(token))
            await asyncio.sleep(1.2)
        finally:
            redis_server.start()
        await asyncio.sleep(1.5)  # the outbox announces the revoke made during the outage
        for token in (api, self.cli_token):  # the restarted Redis is empty: warm the caches again
            await call("warm", "GET", "/x", headers=bearer(token))
        await self.postgres_outage(pg_server, [api, self.cli_token, generate_token()[0]])
        expiry = datetime.fromisoformat(self.created["short-lived"]["expiresAt"])
        await asyncio.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds() + 0.2))
        for name in ("short-lived", "to revoke", "revoked in outage", "api"):
            await call("after", "GET", "/x", headers=bearer(self.token(name)))

    async def postgres_outage(self, pg_server: PostgresServer, tokens: list[str]) -> None:
        """Postgres stopped while tokens (cached and not) are used, then started again."""
        await asyncio.to_thread(pg_server.stop)
        try:
            for token in tokens:
                await self.call("postgres-down", "GET", "/x", headers=bearer(token))
        finally:
            await asyncio.to_thread(pg_server.start)

    def assert_every_answer_happened(self) -> None:
        """The run did what it was meant to: every kind of answer happened."""
        assert self.statuses["rate-limited"] >= {200, 429}
        assert self.statuses["wrong-secret"] == {401}
        assert self.statuses["redis-down"] >= {200, 401}
        assert self.statuses["postgres-down"] >= {200, 503}
        assert self.statuses["after"] == {200, 401}
        assert 400 in self.statuses["malformed-http"]


def debug_environment(database_url: str, redis_url: str, upstream_url: str) -> dict[str, str]:
    """The services' settings: logging at debug level, so that every log line is written."""
    return {
        **introspector_env(database_url, redis_url),
        "KEYGATE_LOG_LEVEL": "debug",
        "KEYGATE_UPSTREAM_URL": upstream_url,
        "KEYGATE_RATE_LIMIT_PER_MINUTE": "1000",
    }


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
    """No issued or presented plaintext, nor the internal secret, anywhere keygate writes."""
    # Searched: logs, metrics, a Postgres dump, Redis data and Redis messages.
    server_logs = ServerLogs(pg_server, redis_server)
    upstream_app, _ = create_upstream()
    upstream = str((await aiohttp_server(upstream_app)).make_url("")).rstrip("/")
    env = debug_environment(database_url, redis_url, upstream)
    introspector = await spawn("introspector", env)
    gateway = await spawn("gateway", {**env, "KEYGATE_INTROSPECTOR_URL": introspector.url})
    cli_log = tmp_path / "cli.log"
    async with published_messages(redis_url) as published, aiohttp.ClientSession() as http:
        run = FullRun(http, gateway.url, env, cli_log)
        await run.issue()
        await run.use_every_way()
        await run.guess_mistype_misplace()
        await run.revoke_through_outages(redis_server, pg_server)
        metrics = [
            await (await http.get(gateway.url + "/_keygate/metrics")).text(),
            await (await http.get(introspector.url + "/metrics")).text(),
        ]
    redis_lines = await redis_dump(redis_url)
    for service in (gateway, introspector):
        assert await service.stop() == 0
    dump = await asyncio.to_thread(pg_dump, pg_server, database_url)

    run.assert_every_answer_happened()
    assert "token_id" in dump and "audit_event" in dump
    corpus = {
        "gateway log": gateway.log_lines(),
        "introspector log": introspector.log_lines(),
        "cli stderr": cli_log.read_text().splitlines(),
        "metrics": "\n".join(metrics).splitlines(),
        "pg_dump": dump.splitlines(),
        "redis data": redis_lines,
        "redis messages": published,
        **server_logs.since(),
    }
    secrets = plaintexts(INTERNAL_SECRET, run.issued + run.presented)
    hits = search(corpus, secrets)
    assert not hits, "\n".join(hits)
    lines_searched = sum(len(lines) for lines in corpus.values())
    assert len(corpus["gateway log"]) > 20 and len(corpus["introspector log"]) > 50
    figures.update(
        plaintexts=len(secrets),
        issued=len(run.issued),
        presented=len(run.presented),
        lines_searched=lines_searched,
        **{name.replace(" ", "_"): len(lines) for name, lines in corpus.items()},
        hits=len(hits),
    )
