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
import pytest

from introspector.hashing import SecretHasher
from tests.harness.figures import Figures
from tests.harness.pg_replica import ReplicatedPostgres, replicated_postgres
from tests.harness.services import KEYGATE, base_environment
from tests.harness.stack import API
from tests.reliability.postgres_stack import bearer, owner_tokens, start_stack

DATABASE = "keygate"
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "ha" / "postgres.json"
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
                f"{gateway}{API}/api-tokens", json={"name": name}, headers=bearer(token)
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
            headers = bearer(tokens[n % len(tokens)])
            async with http.get(f"{gateway}/app/ping", headers=headers) as response:
                await response.read()
                self.bearer.append((time.monotonic(), response.status))
            await asyncio.sleep(0.005)


async def _run_failover(pair: ReplicatedPostgres, gateway: str, tokens: list[str]) -> Traffic:
    """Traffic through a crash of the primary and the standby's promotion."""
    traffic = Traffic()
    async with aiohttp.ClientSession() as http:
        for token in tokens:  # each verified once, so cached from here on
            async with http.get(f"{gateway}/app/ping", headers=bearer(token)) as response:
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
    introspector_url, gateway = await start_stack(url, redis_url, aiohttp_client, aiohttp_server)
    tokens = await owner_tokens(url, introspector_url, hasher)
    traffic = await _run_failover(pair, gateway, tokens)
    resumed = _check_answers(traffic)

    created = {body["id"]: body["token"] for _, status, body, _ in traffic.creates if status == 201}
    stored, audited = await _stored_tokens(pair)
    assert set(created) <= stored, "a token the API returned is missing on the new primary"
    assert stored <= audited, "a token row without its audit event: half-written"
    async with aiohttp.ClientSession() as http:
        for token in created.values():
            async with http.get(f"{gateway}/app/ping", headers=bearer(token)) as response:
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
    introspector_url, gateway = await start_stack(url, redis_url, aiohttp_client, aiohttp_server)
    token = (await owner_tokens(url, introspector_url, hasher))[0]
    await asyncio.to_thread(pair.fence_primary)
    await asyncio.sleep(0.3)  # the sessions take the reloaded setting between statements
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:

        async def create() -> int:
            name = f"switchover {uuid.uuid4().hex[:8]}"
            async with http.post(
                f"{gateway}{API}/api-tokens", json={"name": name}, headers=bearer(token)
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
    introspector_url, gateway = await start_stack(url, redis_url, aiohttp_client, aiohttp_server)
    token = (await owner_tokens(url, introspector_url, hasher))[0]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gateway}{API}/api-tokens",
            json={"name": "standby listed first"},
            headers=bearer(token),
        ) as response,
    ):
        assert response.status == 201, await response.text()
