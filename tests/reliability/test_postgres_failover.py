"""Postgres failover under traffic: keygate follows a promoted standby by itself.

keygate runs on a multi-host ``KEYGATE_DATABASE_URL`` (``target_session_attrs=read-write``) over a
primary and its synchronous streaming standby. Token creation and bearer traffic run through the
gateway while the primary is SIGKILLed and the standby promoted: creates answer 201 or 503 (never
500), cached tokens never fail, and every token the API returned is on the new primary with its
audit event. The figures go to test-artifacts/ha/postgres.json and docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from introspector import users
from introspector.app import create_app as create_introspector
from introspector.db import writable_server
from introspector.hashing import SecretHasher
from introspector.models import Actor
from introspector.settings import IntrospectorSettings
from keygate_cli.settings import load_settings
from tests.harness.figures import Figures
from tests.harness.pg_replica import ReplicatedPostgres, replicated_postgres
from tests.harness.relay import RelayTestServer
from tests.harness.services import KEYGATE, base_environment
from tests.harness.stack import API, INTERNAL_SECRET, gateway_env, introspector_env
from tests.harness.upstream import create_upstream

DATABASE = "keygate"
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "ha" / "postgres.json"
#: Creation is throttled per person by default; this test creates as fast as it can.
NO_CREATE_LIMITS = {
    "KEYGATE_TOKEN_CREATE_LIMIT_PER_USER": "100000",
    "KEYGATE_TOKEN_CREATE_LIMIT_PER_ADDRESS": "100000",
}
#: (sent at, status, body, headers) of one create.
Create = tuple[float, int, dict[str, Any], dict[str, str]]


@pytest.fixture
def pair() -> Iterator[ReplicatedPostgres]:
    """A primary and a synchronous standby with a ``keygate`` database, migrated through the
    multi-host URL by ``keygate migrate``."""
    with replicated_postgres(DATABASE) as started:
        env = {**base_environment(), "KEYGATE_DATABASE_URL": started.url(DATABASE)}
        migrated = subprocess.run(
            [KEYGATE, "migrate"], env=env, capture_output=True, text=True, timeout=60
        )
        assert migrated.returncode == 0, migrated.stderr
        yield started


async def _start_stack(
    url: str, redis_url: str, aiohttp_client: Any, aiohttp_server: Any
) -> tuple[str, str]:
    """An introspector and a gateway in this process on ``url``; their base URLs."""
    settings = load_settings(
        IntrospectorSettings, introspector_env(url, redis_url, **NO_CREATE_LIMITS)
    )
    introspector = await aiohttp_client(create_introspector(settings))
    upstream = await aiohttp_server(create_upstream()[0])
    introspector_url = str(introspector.make_url("")).rstrip("/")
    upstream_url = str(upstream.make_url("")).rstrip("/")
    # A short L1 lifetime: during the outage the gateway also asks the introspector, which
    # answers from its Redis cache — both caches are exercised, not only the gateway's memory.
    extra = {"KEYGATE_RATE_LIMIT_PER_MINUTE": "1000000", "KEYGATE_L1_CACHE_TTL_SECONDS": "1"}
    gateway_settings = load_settings(
        GatewaySettings, gateway_env(introspector_url, upstream_url, redis_url, **extra)
    )
    gateway = await aiohttp_client(RelayTestServer(create_gateway(gateway_settings)))
    return introspector_url, str(gateway.make_url("")).rstrip("/")


async def _owner_tokens(url: str, introspector_url: str, hasher: SecretHasher) -> list[str]:
    """Three tokens of one person, made through the management API."""
    conn = await asyncpg.connect(url, target_session_attrs=writable_server(url))
    try:
        owner = await users.create_user(conn, hasher, Actor.operator(), email="ha@example.com")
    finally:
        await conn.close()
    headers = {
        "X-Keygate-Internal-Secret": INTERNAL_SECRET,
        "X-Keygate-User-Id": str(owner.id),
        "X-Keygate-Auth-Method": "session",
    }
    made: list[str] = []
    async with aiohttp.ClientSession() as http:
        for i in range(3):
            async with http.post(
                f"{introspector_url}{API}/api-tokens", json={"name": f"seed {i}"}, headers=headers
            ) as response:
                assert response.status == 201, await response.text()
                made.append((await response.json())["token"])
    return made


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Traffic:
    """What the creators and the bearer clients saw, with monotonic timestamps."""

    def __init__(self) -> None:
        self.creates: list[Create] = []
        #: (answered at, status) per bearer request.
        self.bearer: list[tuple[float, int]] = []
        self.stop = asyncio.Event()
        #: Set by the first successful create sent after the promotion began.
        self.resumed = asyncio.Event()
        #: When the kill started and when the primary was gone; when ``pg_ctl promote`` was
        #: run and when it returned (it polls, so the standby may write a little earlier).
        self.killed = self.dead = self.promoting = self.promoted = 0.0

    async def create_loop(self, http: aiohttp.ClientSession, gateway: str, token: str) -> None:
        """Create tokens through the gateway (as automation does, with a bearer token)."""
        while not self.stop.is_set():
            name = f"ha {len(self.creates)} {uuid.uuid4().hex[:8]}"  # names are unique per owner
            sent = time.monotonic()
            async with http.post(
                f"{gateway}{API}/api-tokens", json={"name": name}, headers=_bearer(token)
            ) as response:
                body = await response.json(content_type=None)
                self.creates.append((sent, response.status, body, dict(response.headers)))
            if response.status == 201 and 0 < self.promoting < sent:
                self.resumed.set()
            if response.status != 201:
                await asyncio.sleep(0.05)

    async def bearer_loop(
        self, http: aiohttp.ClientSession, gateway: str, tokens: list[str]
    ) -> None:
        """Requests to the app with tokens verified before the failover."""
        n = 0
        while not self.stop.is_set():
            n += 1
            headers = _bearer(tokens[n % len(tokens)])
            async with http.get(f"{gateway}/app/ping", headers=headers) as response:
                await response.read()
                self.bearer.append((time.monotonic(), response.status))
            await asyncio.sleep(0.005)


async def _run_failover(pair: ReplicatedPostgres, gateway: str, tokens: list[str]) -> Traffic:
    """Traffic through a crash of the primary and the standby's promotion."""
    traffic = Traffic()
    async with aiohttp.ClientSession() as http:
        for token in tokens:  # each verified once, so cached from here on
            async with http.get(f"{gateway}/app/ping", headers=_bearer(token)) as response:
                assert response.status == 200, await response.text()
        tasks = [
            *(asyncio.create_task(traffic.create_loop(http, gateway, tokens[0])) for _ in range(2)),
            *(asyncio.create_task(traffic.bearer_loop(http, gateway, tokens)) for _ in range(2)),
        ]
        try:
            await asyncio.sleep(1.0)
            traffic.killed = time.monotonic()
            await asyncio.to_thread(pair.crash_primary)
            traffic.dead = time.monotonic()
            await asyncio.sleep(1.0)  # the window without any read-write server
            traffic.promoting = time.monotonic()
            await asyncio.to_thread(pair.standby.promote)
            traffic.promoted = time.monotonic()
            with contextlib.suppress(TimeoutError):  # the checks below tell what was missing
                await asyncio.wait_for(traffic.resumed.wait(), 20)
            await asyncio.sleep(1.0)  # steady traffic on the new primary
        finally:
            traffic.stop.set()
            await asyncio.gather(*tasks)
    return traffic


async def _stored_tokens(pair: ReplicatedPostgres) -> tuple[set[str], set[str]]:
    """Ids of the tokens on the new primary, and of those with their ``token.create`` event."""
    conn = await pair.connect_standby(DATABASE)
    try:
        assert await conn.fetchval("SELECT NOT pg_is_in_recovery()")
        rows = await conn.fetch("SELECT id::text FROM api_token")
        audited = await conn.fetch(
            "SELECT target_id FROM audit_event WHERE action = 'token.create'"
        )
    finally:
        await conn.close()
    return {r[0] for r in rows}, {r[0] for r in audited}


def _check_answers(traffic: Traffic) -> float:
    """Creates answered 201 or a proper 503 (never 500), only 503 while no server could write;
    the time of the first successful create sent after the kill."""
    odd = [(status, body) for _, status, body, _ in traffic.creates if status not in (201, 503)]
    assert odd == [], odd
    for _, status, _, headers in traffic.creates:
        if status == 503:
            assert headers["Content-Type"].startswith("application/problem+json")
            assert int(headers["Retry-After"]) > 0
    window = [s for at, s, _, _ in traffic.creates if traffic.dead < at < traffic.promoting]
    assert window and set(window) == {503}, window
    assert [s for _, s in traffic.bearer if s != 200] == []
    return min(at for at, status, _, _ in traffic.creates if status == 201 and at > traffic.killed)


async def test_keygate_follows_a_promoted_standby(
    pair: ReplicatedPostgres,
    redis_url: str,
    hasher: SecretHasher,
    aiohttp_client: Any,
    aiohttp_server: Any,
    figures: Figures,
) -> None:
    """Primary killed, standby promoted mid-run: creates resume without a restart, answer only
    201 or 503, lose nothing and write nothing by halves; cached tokens never fail."""
    url = pair.url(DATABASE)
    introspector_url, gateway = await _start_stack(url, redis_url, aiohttp_client, aiohttp_server)
    tokens = await _owner_tokens(url, introspector_url, hasher)
    traffic = await _run_failover(pair, gateway, tokens)
    resumed = _check_answers(traffic)

    created = {body["id"]: body["token"] for _, status, body, _ in traffic.creates if status == 201}
    stored, audited = await _stored_tokens(pair)
    assert set(created) <= stored, "a token the API returned is missing on the new primary"
    assert stored <= audited, "a token row without its audit event: half-written"
    async with aiohttp.ClientSession() as http:
        for token in created.values():
            async with http.get(f"{gateway}/app/ping", headers=_bearer(token)) as response:
                assert response.status == 200, await response.text()
    _report(figures, traffic, resumed, len(created), len(stored))


def _report(figures: Figures, traffic: Traffic, resumed: float, created: int, stored: int) -> None:
    """Print the figures and write them to test-artifacts/ha/postgres.json."""
    statuses = [status for _, status, _, _ in traffic.creates]
    figures.update(
        kill_to_first_create_s=round(resumed - traffic.killed, 3),
        promote_command_to_first_create_s=round(resumed - traffic.promoting, 3),
        kill_to_promote_command_s=round(traffic.promoting - traffic.killed, 3),
        pg_ctl_promote_s=round(traffic.promoted - traffic.promoting, 3),
        creates_201=statuses.count(201),
        creates_503=statuses.count(503),
        token_rows_on_new_primary=stored,
        tokens_returned=created,
        bearer_requests=len(traffic.bearer),
        bearer_failures=sum(1 for _, s in traffic.bearer if s != 200),
        replication="synchronous (synchronous_standby_names='*', synchronous_commit=on)",
    )
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(dict(figures), indent=2) + "\n")
    print(json.dumps(dict(figures)))


async def test_switchover_from_a_fenced_primary(
    pair: ReplicatedPostgres,
    redis_url: str,
    hasher: SecretHasher,
    aiohttp_client: Any,
    aiohttp_server: Any,
    figures: Figures,
) -> None:
    """The old primary turns read-only while keygate holds connections to it, then the standby
    is promoted: creates answer 503 meanwhile (never 500), and keygate drops the read-only
    connections and moves to the new primary without a restart."""
    url = pair.url(DATABASE)
    introspector_url, gateway = await _start_stack(url, redis_url, aiohttp_client, aiohttp_server)
    token = (await _owner_tokens(url, introspector_url, hasher))[0]
    await asyncio.to_thread(pair.fence_primary)
    await asyncio.sleep(0.3)  # the sessions take the reloaded setting between statements
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:

        async def create() -> int:
            name = f"switchover {uuid.uuid4().hex[:8]}"
            async with http.post(
                f"{gateway}{API}/api-tokens", json={"name": name}, headers=_bearer(token)
            ) as response:
                await response.read()
                statuses.append(response.status)
                return response.status

        for _ in range(4):  # neither server takes writes now: the fenced one, nor the standby
            assert await create() == 503, statuses
        await asyncio.to_thread(pair.standby.promote)
        promoted = time.monotonic()
        while await create() != 201:
            assert time.monotonic() < promoted + 10, statuses
            await asyncio.sleep(0.05)
    assert set(statuses) <= {201, 503}, statuses
    figures.update(promote_to_first_create_s=round(time.monotonic() - promoted, 3))


async def test_a_multi_host_url_that_does_not_choose_still_writes_to_the_primary(
    pair: ReplicatedPostgres,
    redis_url: str,
    hasher: SecretHasher,
    aiohttp_client: Any,
    aiohttp_server: Any,
) -> None:
    """The standby is listed first and the URL names no ``target_session_attrs``: asyncpg's own
    default would settle on the standby and every write would fail. keygate asks for the
    writable server, so the operator CLI and token creation both work."""
    url = pair.url(DATABASE, standby_first=True, target_session_attrs=None)
    env = {**base_environment(), "KEYGATE_DATABASE_URL": url}
    created = await asyncio.to_thread(
        subprocess.run,
        [KEYGATE, "users", "create", "--email", "cli@example.test", "--password-stdin"],
        env=env,
        input="a long enough password",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    introspector_url, gateway = await _start_stack(url, redis_url, aiohttp_client, aiohttp_server)
    token = (await _owner_tokens(url, introspector_url, hasher))[0]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gateway}{API}/api-tokens",
            json={"name": "standby listed first"},
            headers=_bearer(token),
        ) as response,
    ):
        assert response.status == 201, await response.text()
