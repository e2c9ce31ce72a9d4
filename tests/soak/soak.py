"""Soak: minutes of steady load on real keygate processes, with a Redis and a Postgres restart
in the middle. Run with ``make soak`` (it is not part of ``make test``: pytest only collects
this file when it is named on the command line).

Afterwards: no error burst once each dependency is back, resident memory grown by less than
10 %, and open file descriptors, sockets, Postgres and Redis connections flat.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from introspector import users
from introspector.hashing import SecretHasher
from introspector.models import Actor
from keygate_core.token_format import generate_token
from tests.harness.fixtures import Spawn
from tests.harness.servers import PostgresServer, RedisServer
from tests.harness.services import Service
from tests.harness.stack import API, INTERNAL_SECRET, introspector_env
from tests.harness.upstream import Upstream, create_upstream
from tests.reliability.measure import Outcome, Traffic, percentile

#: Seconds from the start of the load: warm-up ends, the faults, the end.
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "240"))
WARM_UP = SOAK_SECONDS * 0.15
REDIS_RESTART = SOAK_SECONDS * 0.35
POSTGRES_RESTART = SOAK_SECONDS * 0.65
OUTAGE = 5.0
#: After a dependency is back, requests must all succeed from this many seconds on.
GRACE = 10.0
SAMPLE_EVERY = 5.0
RSS_GROWTH = 0.10
EXPECTED = {"token": {200}, "cookie": {200}, "unknown": {401}}


@dataclass
class Resources:
    """What the processes and the servers hold at one moment."""

    at: float
    rss_kib: dict[str, int]
    fds: dict[str, int]
    sockets: dict[str, int]
    postgres_connections: int
    redis_clients: int


async def take_sample(
    at: float, services: dict[str, Service], database_url: str, redis_url: str
) -> Resources:
    """Resident memory and descriptors of each service; connections each server sees."""
    conn = await asyncpg.connect(database_url)
    try:
        postgres = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("clients")
    finally:
        await client.aclose()
    descriptors = {name: service.descriptors() for name, service in services.items()}
    return Resources(
        at,
        {name: service.rss_kib() for name, service in services.items()},
        {name: fds for name, (fds, _) in descriptors.items()},
        {name: sockets for name, (_, sockets) in descriptors.items()},
        int(postgres),
        int(info["connected_clients"]) - 1,  # not counting this sampling client
    )


def errors(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status not in EXPECTED[o.kind]]


async def start_services(
    spawn: Spawn, aiohttp_server: Any, database_url: str, redis_url: str
) -> tuple[dict[str, Service], Upstream]:
    """The gateway and introspector processes, in front of a recording upstream."""
    upstream_app, record = create_upstream()
    upstream = await aiohttp_server(upstream_app)
    env = {
        **introspector_env(database_url, redis_url),
        "KEYGATE_UPSTREAM_URL": str(upstream.make_url("")).rstrip("/"),
        "KEYGATE_RATE_LIMIT_PER_MINUTE": "1000000",
        "KEYGATE_LOG_LEVEL": "warning",
    }
    introspector = await spawn("introspector", env)
    gateway = await spawn("gateway", {**env, "KEYGATE_INTROSPECTOR_URL": introspector.url})
    return {"gateway": gateway, "introspector": introspector}, record


async def issue_tokens(introspector_url: str, owner_id: str) -> list[str]:
    """20 tokens for ``owner_id``, created through the introspector's API."""
    identity = {
        "X-Keygate-Internal-Secret": INTERNAL_SECRET,
        "X-Keygate-User-Id": owner_id,
        "X-Keygate-Auth-Method": "session",
    }
    tokens = []
    async with aiohttp.ClientSession() as http:
        for i in range(20):
            async with http.post(
                f"{introspector_url}{API}/api-tokens", json={"name": f"soak {i}"}, headers=identity
            ) as response:
                assert response.status == 201, await response.text()
                tokens.append((await response.json())["token"])
    return tokens


class Soak:
    """The soak's timeline (event-loop clock): its start and end, the two restarts, and the
    resources sampled every SAMPLE_EVERY seconds."""

    def __init__(self, services: dict[str, Service], database_url: str, redis_url: str) -> None:
        self.services = services
        self.database_url = database_url
        self.redis_url = redis_url
        self.samples: list[Resources] = []
        #: (broken, restored) by dependency.
        self.faults: dict[str, tuple[float, float]] = {}
        self.start = self.end = 0.0

    async def run(self, redis_server: RedisServer, pg_server: PostgresServer) -> None:
        """Sample until REDIS_RESTART, restart Redis, sample until POSTGRES_RESTART, restart
        Postgres, sample until SOAK_SECONDS."""
        loop = asyncio.get_running_loop()
        self.start = loop.time()
        await self.until(REDIS_RESTART)
        broken = loop.time()
        redis_server.stop()
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(redis_server.start)
        self.faults["redis"] = (broken, loop.time())
        await self.until(POSTGRES_RESTART)
        broken = loop.time()
        await asyncio.to_thread(pg_server.stop)
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(pg_server.start)
        self.faults["postgres"] = (broken, loop.time())
        await self.until(SOAK_SECONDS)
        self.end = loop.time()

    async def until(self, offset: float) -> None:
        """Take a sample every SAMPLE_EVERY seconds until ``offset`` seconds after the start."""
        loop = asyncio.get_running_loop()
        while loop.time() < self.start + offset:
            await asyncio.sleep(min(SAMPLE_EVERY, self.start + offset - loop.time()))
            self.samples.append(
                await take_sample(loop.time(), self.services, self.database_url, self.redis_url)
            )


def check_recovery(traffic: Traffic, soak: Soak, report: list[str]) -> None:
    """No error burst after recovery: from GRACE s after each restart to the next fault (or the
    end), every request got its expected answer. Reports errors and latency."""
    faults = soak.faults
    windows = {
        "redis": (faults["redis"][1] + GRACE, faults["postgres"][0]),
        "postgres": (faults["postgres"][1] + GRACE, soak.end),
        "warm-up to redis": (soak.start + WARM_UP, faults["redis"][0]),
    }
    for name, (window_start, window_end) in windows.items():
        inside = traffic.within(window_start, window_end)
        bad = errors(inside)
        report.append(f"{name}: {len(inside)} requests, {len(bad)} errors")
        assert inside and not bad, (name, Counter((o.kind, o.status) for o in bad))
    for name, (broken, restored) in faults.items():
        during = traffic.within(broken, restored + GRACE)
        last_error = max((o.finished for o in errors(during)), default=restored)
        report.append(
            f"{name} restart: {len(errors(during))} errors while down and in the grace period, "
            f"last {max(0.0, last_error - restored):.2f} s after it was back"
        )
    latencies = [o.elapsed for o in traffic.outcomes if o.status == 200]
    report.append(
        f"latency p50 {percentile(latencies, 50) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.1f} ms"
    )


def check_resources(soak: Soak, report: list[str]) -> None:
    """From the end of the warm-up to the end: RSS growth under RSS_GROWTH, descriptors,
    sockets and server connections flat. Reports each."""
    samples = soak.samples
    baseline = next(s for s in samples if s.at >= soak.start + WARM_UP)
    final = samples[-1]
    for name in soak.services:
        growth = final.rss_kib[name] / baseline.rss_kib[name] - 1
        peak = max(s.rss_kib[name] for s in samples if s.at >= baseline.at)
        report.append(
            f"{name}: RSS {baseline.rss_kib[name]} → {final.rss_kib[name]} KiB "
            f"({growth:+.1%}, peak {peak}), fds {baseline.fds[name]} → {final.fds[name]}, "
            f"sockets {baseline.sockets[name]} → {final.sockets[name]}"
        )
        assert growth < RSS_GROWTH, report[-1]
        assert final.fds[name] <= baseline.fds[name] + 5, report[-1]
        assert final.sockets[name] <= baseline.sockets[name] + 5, report[-1]
    report.append(
        f"Postgres connections {baseline.postgres_connections} → {final.postgres_connections} "
        f"(max {max(s.postgres_connections for s in samples)}), Redis clients "
        f"{baseline.redis_clients} → {final.redis_clients} "
        f"(max {max(s.redis_clients for s in samples)})"
    )
    assert final.postgres_connections <= baseline.postgres_connections + 2, report[-1]
    assert final.redis_clients <= baseline.redis_clients + 5, report[-1]


async def test_soak_with_a_redis_and_a_postgres_restart(
    spawn: Spawn,
    database_url: str,
    redis_url: str,
    db: asyncpg.Connection,
    hasher: SecretHasher,
    pg_server: PostgresServer,
    redis_server: RedisServer,
    aiohttp_server: Any,
) -> None:
    """Steady load through a Redis and a Postgres restart: no errors after recovery, no growth."""
    # For SOAK_SECONDS: no errors from GRACE seconds after each restart on, RSS growth under
    # 10 %, flat descriptors and connections.
    services, record = await start_services(spawn, aiohttp_server, database_url, redis_url)
    owner = await users.create_user(db, hasher, Actor.operator(), email="soak@example.com")
    turns = itertools.cycle(await issue_tokens(services["introspector"].url, str(owner.id)))
    kinds = {
        "token": lambda: ("/x", {"Authorization": f"Bearer {next(turns)}"}),
        "cookie": lambda: ("/x", {"Cookie": "sid=soak"}),
        "unknown": lambda: ("/x", {"Authorization": f"Bearer {generate_token()[0]}"}),
    }
    soak = Soak(services, database_url, redis_url)
    # Four clients, each pausing 20 ms between requests: a steady ~150 requests a second.
    async with Traffic(services["gateway"].url, kinds, concurrency=4, pause=0.02) as traffic:
        await soak.run(redis_server, pg_server)

    outcomes = traffic.outcomes
    report = [
        f"{len(outcomes)} requests in {soak.end - soak.start:.0f} s",
        str(Counter(o.status for o in outcomes)),
    ]
    check_recovery(traffic, soak, report)
    check_resources(soak, report)
    assert len(record.requests) == sum(o.status == 200 for o in outcomes)
    print("\nsoak results\n  " + "\n  ".join(report))
