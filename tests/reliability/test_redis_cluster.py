"""keygate on a real Redis Cluster (three masters, three replicas): spread, exact, fast, failover.

One cluster, one database, one introspector and two gateways (real processes) serve the whole
module. 10,000 tokens land on every master; a 50-per-minute token admits exactly 50 of 500
requests spread over both gateways; a revoke reaches both gateways' L1 caches over pub/sub; and a
master SIGKILLed under traffic is replaced by its replica without a single 401. The figures go to
test-artifacts/ha/cluster.json.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from redis.crc import key_slot

from gateway.pipeline.limit_redis import LEASE_LUA
from keygate_core.redis_keys import REVOCATION_CHANNEL, token_key
from tests.harness.buckets import most_admitted
from tests.harness.figures import Figures
from tests.harness.redis_cluster import RedisClusterServers
from tests.harness.servers import PostgresServer, free_port
from tests.harness.services import Service, base_environment
from tests.harness.stack import gateway_env, introspector_env
from tests.reliability.cluster_stack import (
    DEGRADED,
    ClusterStack,
    ClusterToken,
    Traffic,
    create_tokens,
    listening,
    metric,
    revoke,
    revoked_everywhere,
    statuses,
    until_limiter_recovers,
    until_refused,
    write_figures,
)
from tests.reliability.measure import percentile

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ARTIFACT = Path("test-artifacts/ha/cluster.json")
TEMPLATE_DB = "keygate_template"
FIGURES: dict[str, object] = {}
#: The parameters the tokens were hashed with (else every first use would rehash them).
CHEAP_ARGON2 = {
    "KEYGATE_ARGON2_TIME_COST": "1",
    "KEYGATE_ARGON2_MEMORY_KIB": "8",
    "KEYGATE_ALLOW_WEAK_ARGON2": "true",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """Three masters and three replicas, for the whole module."""
    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    cluster: RedisClusterServers,
    pg_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ClusterStack]:
    """A database of the module's own, an introspector and two gateways on the cluster."""
    name = f"c_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.url())
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    logs = tmp_path_factory.mktemp("cluster-logs")
    started: list[Service] = []
    try:
        db = await asyncpg.connect(pg_server.url(name))
        owner = await db.fetchval("INSERT INTO users (email) VALUES ('c@example.com') RETURNING id")
        port = free_port()
        # Verdicts cached for an hour: on a loaded machine the 10k tokens take longer than the
        # default minute, and the spread check counts the cached verdicts afterwards.
        env = introspector_env(
            pg_server.url(name), cluster.url, KEYGATE_CACHE_TTL_SECONDS="3600", **CHEAP_ARGON2
        )
        introspector = Service(
            "introspector",
            {**base_environment(), **env, "KEYGATE_INTROSPECTOR_PORT": str(port)},
            port,
            logs / "introspector.log",
        )
        started.append(introspector)
        await introspector.start()
        for i in range(2):
            port = free_port()
            env = gateway_env(introspector.url, "http://127.0.0.1:9", cluster.url)
            gateway = Service(
                "gateway",
                {**base_environment(), **env, "KEYGATE_GATEWAY_PORT": str(port)},
                port,
                logs / f"gateway-{i}.log",
            )
            started.append(gateway)
            await gateway.start()
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=128), timeout=aiohttp.ClientTimeout(total=10)
        ) as http:
            yield ClusterStack(cluster, db, owner, introspector, started[1:], http)
        await db.close()
    finally:
        for service in reversed(started):
            await service.stop()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
        if FIGURES:
            write_figures(ARTIFACT, FIGURES)


def _spread(tokens: list[ClusterToken], gateways: list[Service]) -> list[tuple[Service, str]]:
    return [(gateways[i % len(gateways)], t.plaintext) for i, t in enumerate(tokens)]


async def test_ten_thousand_tokens_land_on_every_master(
    stack: ClusterStack, figures: Figures
) -> None:
    """10,000 tokens, each used once through a gateway, are all admitted, and their keys are
    spread over every master."""
    tokens = await create_tokens(stack.db, stack.owner, 10_000)
    started = time.monotonic()
    # 16 at a time: more would queue past the gateways' 1 s introspection timeout on 2 cores.
    counts = await statuses(stack.http, _spread(tokens, stack.gateways), concurrency=16)
    elapsed = time.monotonic() - started
    assert counts == Counter({200: 10_000})
    per_master = stack.cluster.keys_per_master()
    verdicts = stack.cluster.keys_per_master("kg:tok:*")
    slots = {key_slot(token_key(t.public_id).encode()) for t in tokens}
    figures.update(tokens=10_000, seconds=elapsed, slots=len(slots), verdicts=verdicts)
    FIGURES["spread"] = {
        "tokens": 10_000,
        "seconds": round(elapsed, 2),
        "slots": len(slots),
        "keys_per_master": per_master,
        "cached_verdicts_per_master": verdicts,
    }
    assert len(verdicts) == 3
    # Each token's verdict is cached on the master of its slot: about a third on each.
    assert sum(verdicts.values()) >= 10_000
    assert all(count > 2_500 for count in verdicts.values()), verdicts


async def test_limit_is_exact_across_two_gateways(stack: ClusterStack, figures: Figures) -> None:
    """A token limited to 50 a minute gets 50 of 500 requests spread over two gateways (plus
    whatever the bucket refilled meanwhile: one token per 1.2 s)."""
    [token] = await create_tokens(stack.db, stack.owner, 1, rate_limit=50)
    calls = [(stack.gateways[i % 2], token.plaintext) for i in range(500)]
    started = time.monotonic()
    counts = await statuses(stack.http, calls, concurrency=50)
    elapsed = time.monotonic() - started
    figures.update(admitted=counts[200], refused=counts[429], seconds=elapsed)
    FIGURES["limit"] = {"admitted": counts[200], "refused": counts[429], "seconds": elapsed}
    assert set(counts) <= {200, 429}, counts
    assert 50 <= counts[200] <= most_admitted(50, elapsed), counts


async def test_revocation_reaches_both_gateways(stack: ClusterStack, figures: Figures) -> None:
    """Each of 50 warm tokens, revoked one at a time, is refused by both gateways soon after."""
    tokens = await create_tokens(stack.db, stack.owner, 50)
    for gateway in stack.gateways:
        assert await statuses(stack.http, [(gateway, t.plaintext) for t in tokens]) == Counter(
            {200: 50}
        )
    samples, after_204 = [], []  # from sending the revoke, and from its 204
    for token in tokens:
        started = time.monotonic()
        answered = await revoke(stack.http, stack.introspector, stack.owner, token.token_id)
        both = await asyncio.gather(
            *(until_refused(stack.http, g, token.plaintext, started) for g in stack.gateways)
        )
        samples.append(max(both))
        after_204.append(max(both) - (answered - started))
    p50, p99 = percentile(samples, 50) * 1000, percentile(samples, 99) * 1000
    p99_after_204 = percentile(after_204, 99) * 1000
    figures.update(revocations=len(samples), p50_ms=p50, p99_ms=p99, p99_after_204=p99_after_204)
    FIGURES["revocation"] = {
        "revocations": len(samples),
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
        "p50_after_204_ms": round(percentile(after_204, 50) * 1000, 1),
        "p99_after_204_ms": round(p99_after_204, 1),
    }
    assert p99 < 1000  # the design's bound; the figure itself is reported


async def test_master_failover_without_401(stack: ClusterStack, figures: Figures) -> None:
    """SIGKILL the master that holds the revocation channel's slot under traffic: its replica
    takes over, no request gets 401, the limiter and the revocation listeners come back, and a
    revoke after the failover reaches both gateways."""
    tokens = await create_tokens(stack.db, stack.owner, 200)
    calls = [(g, t.plaintext) for t in tokens for g in stack.gateways]
    assert await statuses(stack.http, calls) == Counter({200: 400})
    listener, _, listen_task = await listening(stack)
    channel_slot = key_slot(REVOCATION_CHANNEL.encode())
    victim = stack.cluster.serving(channel_slot)
    replica = stack.cluster.replica_of(victim)
    traffic = Traffic(stack, tokens, [])
    running = asyncio.create_task(traffic.run())
    try:
        await asyncio.sleep(1.0)
        degraded_before = sum([await metric(stack.http, g, DEGRADED) for g in stack.gateways])
        listener.connected.clear()
        killed = time.monotonic()
        stack.cluster.kill(victim)
        await asyncio.to_thread(stack.cluster.wait_healthy, 20.0)
        promoted = time.monotonic() - killed
        assert replica in stack.cluster.masters()
        await asyncio.wait_for(listener.connected.wait(), 10)
        listener_back = time.monotonic() - killed
        recovered = await until_limiter_recovers(stack)
        recovery = time.monotonic() - killed
        await asyncio.sleep(1.0)
    finally:
        traffic.running = False
        await running
        await listener.stop(listen_task)
    counts, window, worst = traffic.summary(killed)
    cold = await create_tokens(stack.db, stack.owner, 20)
    assert await statuses(stack.http, _spread(cold, stack.gateways)) == Counter({200: 20})
    revoked_in = await revoked_everywhere(stack, tokens[0])
    found = {
        "requests": sum(counts.values()),
        "statuses": {str(k): v for k, v in sorted(counts.items())},
        "promoted_s": round(promoted, 3),
        "listener_back_s": round(listener_back, 3),
        "recovery_s": round(recovery, 3),
        "window_s": round(window, 3),
        "worst_latency_s": round(worst, 3),
        "degraded_decisions": recovered - degraded_before,
        "revoke_after_failover_ms": round(revoked_in * 1000, 1),
    }
    figures.update(found)
    FIGURES["failover"] = found
    assert 401 not in counts, counts
    assert set(counts) <= {200, 503}, counts
    # Commands fail within keygate's timeouts instead of redis-py's retries (seconds).
    assert worst < 2.0
    assert revoked_in < 1.0
    # The new master lacked the limiter's script (NOSCRIPT): the gateways loaded it again.
    with replica.client() as client:
        assert client.script_exists(
            hashlib.sha1(LEASE_LUA.encode(), usedforsecurity=False).hexdigest()
        ) == [True]
