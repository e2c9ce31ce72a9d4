"""keygate on a Redis Cluster: one introspector and two gateways as processes, many tokens.

Tokens are made as ``keygate tokens create`` makes them — an argon2id hash of the secret plus the
fast keyed verifier the introspector checks first — except that the argon2 parameters are the
cheapest (the introspector never runs argon2 for a token that has a verifier; it runs with the
same parameters, so it does not rehash them either), so 10,000 take a second instead of
minutes. Requests go to ``/_keygate/auth``, the forward-auth answer: the whole pipeline (strip,
authenticate, authorize, limit) without an upstream.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from gateway.revocations import RevocationListener
from gateway.token_cache import L1Cache
from introspector.hashing import Argon2Params, SecretHasher
from introspector.keyed_mac import TOKEN_VERIFIER, KeyedMac
from keygate_core.redis_connect import open_redis
from keygate_core.token_format import generate_token
from tests.harness.redis_cluster import RedisClusterServers
from tests.harness.services import Service
from tests.harness.stack import API, INTERNAL_SECRET

#: Limiter decisions a gateway made without Redis.
DEGRADED = "keygate_ratelimit_degraded_total"


@dataclass(frozen=True)
class ClusterToken:
    """A token in Postgres: its plaintext, public id and row id."""

    plaintext: str
    public_id: str
    token_id: uuid.UUID


async def create_tokens(
    conn: asyncpg.Connection, owner: uuid.UUID, count: int, rate_limit: int | None = None
) -> list[ClusterToken]:
    """``count`` tokens of ``owner``, with the introspector's own verifier key."""
    hasher = SecretHasher(
        Argon2Params(time_cost=1, memory_kib=8),
        token_verifier=KeyedMac.derive(INTERNAL_SECRET, TOKEN_VERIFIER),
    )
    mac = hasher.token_verifier
    assert mac is not None
    made, rows = [], []
    try:
        for _ in range(count):
            plaintext, parts = generate_token()
            token = ClusterToken(plaintext, parts.public_id, uuid.uuid4())
            made.append(token)
            rows.append(
                (
                    token.token_id,
                    token.public_id,
                    owner,
                    "cluster",
                    hasher.hash(parts.secret),
                    mac.sign(parts.secret),
                    mac.key_id,
                    rate_limit,
                )
            )
    finally:
        hasher.close()
    await conn.copy_records_to_table(
        "api_token",
        records=rows,
        columns=[
            "id",
            "public_id",
            "user_id",
            "name",
            "token_hash",
            "secret_verifier",
            "secret_verifier_key_id",
            "rate_limit",
        ],
    )
    return made


async def auth_status(http: aiohttp.ClientSession, gateway: Service, token: str) -> int:
    """The gateway's forward-auth answer for ``token`` (503 when it cannot be reached)."""
    try:
        async with http.get(
            gateway.url + "/_keygate/auth",
            headers={"Authorization": f"Bearer {token}", "X-Original-URI": "/x"},
        ) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 503


async def statuses(
    http: aiohttp.ClientSession, calls: list[tuple[Service, str]], concurrency: int = 64
) -> Counter[int]:
    """Send every (gateway, token) call, ``concurrency`` at a time; count the statuses."""
    counts: Counter[int] = Counter()
    queue = iter(calls)

    async def worker() -> None:
        for gateway, token in queue:
            counts[await auth_status(http, gateway, token)] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


async def revoke(
    http: aiohttp.ClientSession, introspector: Service, owner: uuid.UUID, token_id: uuid.UUID
) -> float:
    """Revoke through the introspector's API as the owner's session would (via the gateway);
    returns when the 204 arrived (monotonic)."""
    headers = {
        "X-Keygate-Internal-Secret": INTERNAL_SECRET,
        "X-Keygate-User-Id": str(owner),
        "X-Keygate-Auth-Method": "session",
    }
    async with http.delete(f"{introspector.url}{API}/api-tokens/{token_id}", headers=headers) as r:
        assert r.status == 204, await r.text()
    return time.monotonic()


async def until_refused(
    http: aiohttp.ClientSession, gateway: Service, token: str, started: float, within: float = 5.0
) -> float:
    """Seconds from ``started`` (monotonic) until ``gateway`` answers 401 for ``token``."""
    while time.monotonic() - started < within:
        if await auth_status(http, gateway, token) == 401:
            return time.monotonic() - started
    raise AssertionError(f"still admitted {within} s after the revoke")


async def metric(http: aiohttp.ClientSession, gateway: Service, name: str) -> float:
    """The sum of every sample of ``name`` on ``gateway``'s metrics."""
    async with http.get(gateway.url + "/_keygate/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    )


@dataclass
class ClusterStack:
    """The module's servers and keygate processes."""

    cluster: RedisClusterServers
    db: asyncpg.Connection
    owner: uuid.UUID
    introspector: Service
    gateways: list[Service]
    http: aiohttp.ClientSession


@dataclass
class Traffic:
    """Bearer requests on warm tokens through both gateways until told to stop."""

    stack: ClusterStack
    tokens: list[ClusterToken]
    #: (sent at, status, seconds) per request, on the monotonic clock.
    answers: list[tuple[float, int, float]]
    running: bool = True

    async def run(self, workers: int = 8) -> None:
        async def worker(n: int) -> None:
            i = n
            while self.running:
                token = self.tokens[i % len(self.tokens)]
                i += workers
                sent = time.monotonic()
                status = await auth_status(
                    self.stack.http, self.stack.gateways[i % 2], token.plaintext
                )
                self.answers.append((sent, status, time.monotonic() - sent))

        await asyncio.gather(*(worker(n) for n in range(workers)))

    def summary(self, since: float) -> tuple[Counter[int], float, float]:
        """Every status, then the window of answers sent from ``since`` on that failed or took
        over half a second (first to last), and the slowest of those answers."""
        after = [a for a in self.answers if a[0] >= since]
        slow = [sent - since for sent, status, took in after if status != 200 or took > 0.5]
        window = max(slow) - min(slow) if slow else 0.0
        worst = max(took for _, _, took in after)
        return Counter(status for _, status, _ in self.answers), window, worst


async def revoked_everywhere(stack: ClusterStack, token: ClusterToken) -> float:
    """Revoke ``token``; seconds from sending the revoke until every gateway answers 401."""
    started = time.monotonic()
    await revoke(stack.http, stack.introspector, stack.owner, token.token_id)
    both = await asyncio.gather(
        *(until_refused(stack.http, g, token.plaintext, started) for g in stack.gateways)
    )
    return max(both)


async def listening(stack: ClusterStack) -> tuple[RevocationListener, L1Cache, asyncio.Task[None]]:
    """A gateway's revocation listener, in this process, on its own cluster client."""
    client = open_redis(stack.cluster.url, timeout=None, connect_timeout=0.2)
    cache = L1Cache(100, 60)
    listener = RevocationListener(client, cache, dead_after=0.5)
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.connected.wait(), 5)
    return listener, cache, task


async def until_limiter_recovers(stack: ClusterStack, within: float = 20.0) -> float:
    """Wait until neither gateway's limiter decides without Redis for a whole second; returns
    the count of decisions made without it so far."""
    deadline = time.monotonic() + within
    last = -1.0
    while time.monotonic() < deadline:
        now = sum([await metric(stack.http, g, DEGRADED) for g in stack.gateways])
        if now == last:
            return now
        last = now
        await asyncio.sleep(1.0)
    raise AssertionError("the limiter still decides without Redis")


def write_figures(path: Path, figures: dict[str, object]) -> None:
    """The module's figures as JSON (test-artifacts/ha/cluster.json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
