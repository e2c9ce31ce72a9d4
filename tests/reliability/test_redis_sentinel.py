"""The Redis primary behind Sentinel is SIGKILLed under traffic through two gateways.

One primary, one replica and three sentinels (quorum 2, down after 1 s) on loopback; an
introspector and two gateways reach them through ``redis+sentinel://``. They run in this
process, like the other fault tests: only Redis is killed, and in-process apps let the test
read each gateway's revocation listener directly. Bearer traffic (plain tokens and tokens with a
small rate limit of their own) flows through both gateways while the primary dies; a token is
revoked while no primary exists. Asserted: no 401 for a good token at any time, 503s only
inside the failover, degraded limiter decisions counted, the revoked token refused by both
gateways once the replica is promoted, and everything healthy again without a restart.
The figures go to the run's summary and to ``test-artifacts/ha/sentinel.json``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app as create_gateway
from gateway.appkeys import LISTENER, USAGE
from gateway.settings import GatewaySettings
from introspector.models import User
from keygate_cli.settings import load_settings
from keygate_core.redis_keys import failed_token_key, token_create_key
from keygate_core.token_format import generate_token, parse_token
from tests.harness.figures import Figures
from tests.harness.relay import RelayTestServer
from tests.harness.sentinel import SentinelDeployment
from tests.harness.stack import Stack, StartStack, gateway_env
from tests.reliability.fault_traffic import base_url, bearer, rotating, statuses
from tests.reliability.measure import Outcome, Traffic, percentile, sample

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "ha" / "sentinel.json"
DEGRADED = "keygate_ratelimit_degraded_total"
#: Generous bound on the whole failover plus recovery (it takes a few seconds).
RECOVERY_BOUND = 20.0
#: Statuses a good token may get: 429 from its own small limit, 503 only during the failover.
GOOD = {200, 429, 503}
SETTINGS = {"KEYGATE_REDIS_TIMEOUT_MS": "200", "KEYGATE_INTROSPECTOR_TIMEOUT_MS": "2000"}


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelDeployment]:
    """The deployment; every process is killed after the test, whatever happened."""
    with SentinelDeployment(tmp_path / "redis") as deployment:
        yield deployment


@pytest.fixture
def redis_url(sentinels: SentinelDeployment) -> str:
    """keygate's services in this module reach Redis through the sentinels."""
    return sentinels.url()


async def second_gateway(stack: Stack, redis_url: str, aiohttp_client: Any) -> TestClient[Any, Any]:
    """Another gateway on the same introspector, upstream and Redis."""
    introspector_url = str(stack.introspector.client.make_url("")).rstrip("/")
    env = gateway_env(introspector_url, stack.upstream_url, redis_url, **SETTINGS)
    settings = load_settings(GatewaySettings, env)
    client: TestClient[Any, Any] = await aiohttp_client(RelayTestServer(create_gateway(settings)))
    return client


def window(outcomes: list[Outcome], status: int) -> tuple[float, float] | None:
    """(first start, last end) of the requests answered ``status``."""
    hits = [o for o in outcomes if o.status == status]
    if not hits:
        return None
    return min(o.started for o in hits), max(o.finished for o in hits)


@dataclass
class Failover:
    """The primary's death under traffic and its moments (event-loop clock)."""

    sentinels: SentinelDeployment
    gateways: list[TestClient[Any, Any]]
    killed: float = 0.0
    revoked: float = 0.0
    promoted: float = 0.0
    recovered: float = 0.0
    #: (time, status) of each gateway's readyz, polled through the failover.
    readiness: list[tuple[float, int]] = field(default_factory=list)

    async def run(self, stack: Stack, admin: User, doomed: dict[str, Any]) -> None:
        """Kill the primary, revoke ``doomed`` before a replica is promoted, wait for keygate."""
        loop = asyncio.get_running_loop()
        old_primary = self.sentinels.primary.port
        self.sentinels.primary.kill()
        self.killed = loop.time()
        await asyncio.sleep(0.2)
        # No primary exists yet: the revoke commits in Postgres and waits in the outbox.
        assert (await stack.introspector.revoke(admin, doomed["id"])).status == 204
        self.revoked = loop.time()
        while await asyncio.to_thread(self.sentinels.current_primary_port) == old_primary:
            assert loop.time() - self.killed < RECOVERY_BOUND, "no replica was promoted"
            await self._poll_readiness()
        self.promoted = loop.time()
        while not all([await self._healthy(g, doomed["token"]) for g in self.gateways]):
            assert loop.time() - self.killed < RECOVERY_BOUND, "keygate did not recover"
            await asyncio.sleep(0.05)
        self.recovered = loop.time()

    async def _poll_readiness(self) -> None:
        for gateway in self.gateways:
            status = (await gateway.get("/_keygate/readyz")).status
            self.readiness.append((asyncio.get_running_loop().time(), status))
        await asyncio.sleep(0.05)

    async def _healthy(self, gateway: TestClient[Any, Any], doomed: str) -> bool:
        """Ready, listening for revocations, and refusing the revoked token."""
        ready = await gateway.get("/_keygate/readyz")
        listening = app_of(gateway)[LISTENER].connected.is_set()
        refused = await gateway.get("/x", headers=bearer(doomed))
        return ready.status == 200 and listening and refused.status == 401


async def test_sentinel_failover_under_traffic(
    start_stack: StartStack,
    sentinels: SentinelDeployment,
    redis_url: str,
    aiohttp_client: Any,
    figures: Figures,
) -> None:
    """SIGKILL the primary under traffic: no 401, 503s only in the failover, revokes honoured,
    full recovery without a restart."""
    stack = await start_stack(**SETTINGS)
    gateways = [stack.gateway, await second_gateway(stack, redis_url, aiohttp_client)]
    ki = stack.introspector
    admin = await ki.user("root@example.com", admin=True)
    plain_rows = [await ki.create_ok(admin, name=f"plain {i}") for i in range(4)]
    plain = [row["token"] for row in plain_rows]
    limited = [await stack.token_for(admin, name=f"limited {i}", rateLimit=120) for i in range(2)]
    doomed = await ki.create_ok(admin, name="doomed")
    for gateway in gateways:
        for token in [*plain, *limited, doomed["token"]]:
            assert (await gateway.get("/x", headers=bearer(token))).status == 200
        assert (await gateway.get("/_keygate/readyz")).status == 200
    kinds = {
        "plain": rotating(plain).__next__,
        "limited": rotating(limited).__next__,
        "doomed": rotating([doomed["token"]]).__next__,
    }
    degraded_before = [sample(await _metrics(g), DEGRADED) for g in gateways]
    failover = Failover(sentinels, gateways)
    async with (
        Traffic(base_url(gateways[0]), kinds, concurrency=6) as first,
        Traffic(base_url(gateways[1]), kinds, concurrency=6) as second,
    ):
        await first.wait_for(100)
        await second.wait_for(100)
        await failover.run(stack, admin, doomed)
        await first.wait_for(200)
        await second.wait_for(200)
    measured = assert_outcomes(first.outcomes + second.outcomes, failover)
    degraded = [
        sample(await _metrics(g), DEGRADED) - b
        for g, b in zip(gateways, degraded_before, strict=True)
    ]
    assert sum(degraded) > 0, "no limiter decision was counted as degraded"
    for gateway in gateways:
        assert (await gateway.get("/x", headers=bearer(doomed["token"]))).status == 401
        assert app_of(gateway)[LISTENER].reconnects >= 2
    served = [
        o
        for o in first.outcomes + second.outcomes
        if o.kind == "plain" and o.status == 200 and o.started >= failover.killed
    ]
    await assert_state_on_new_primary(
        stack, gateways, sentinels, [r["id"] for r in plain_rows], len(served)
    )
    measured["limiter_degraded_decisions"] = [int(d) for d in degraded]
    figures.update(measured)
    print(json.dumps(measured))
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(measured, indent=2) + "\n")


def assert_outcomes(outcomes: list[Outcome], failover: Failover) -> dict[str, Any]:
    """Good tokens never 401 and 503 only within the failover; the revoked token 401 on every
    gateway once recovered; readyz 503 while no primary answered. The figures."""
    good = [o for o in outcomes if o.kind != "doomed"]
    bad = [o for o in good if o.status not in GOOD]
    assert not bad, f"good tokens got answers other than {GOOD}: {statuses(bad)}"
    unavailable = window(outcomes, 503)
    if unavailable is not None:
        assert failover.killed <= unavailable[0] and unavailable[1] <= failover.recovered
    after = [o for o in good if o.started >= failover.recovered]
    assert after and {o.status for o in after} <= {200, 429}
    doomed_after = [o for o in outcomes if o.kind == "doomed" and o.started >= failover.recovered]
    assert doomed_after and {o.status for o in doomed_after} == {401}
    unready = [t for t, status in failover.readiness if status == 503]
    assert unready, "readyz never reported the missing primary"
    during = [o.elapsed for o in good if failover.killed <= o.started < failover.recovered]
    return {
        "requests": len(outcomes),
        "status_counts": {str(k): v for k, v in sorted(statuses(outcomes).items())},
        "good_token_503s": len([o for o in good if o.status == 503]),
        "failover_seconds": round(failover.promoted - failover.killed, 3),
        "recovery_seconds": round(failover.recovered - failover.killed, 3),
        "window_503_seconds": round(unavailable[1] - unavailable[0], 3) if unavailable else 0.0,
        "readyz_503_seconds": round(max(unready) - failover.killed, 3),
        "revoked_after_kill_seconds": round(failover.revoked - failover.killed, 3),
        "p99_ms_during_failover": round(percentile(during, 99) * 1000, 1),
        "p99_ms_overall": round(percentile([o.elapsed for o in good], 99) * 1000, 1),
    }


async def test_listener_resubscribes_itself_even_with_a_frozen_sentinel(
    start_stack: StartStack, sentinels: SentinelDeployment, figures: Figures
) -> None:
    """A lost subscription is noticed by the revocation listener, which clears the L1 cache
    (revocations published meanwhile were missed) and subscribes again through the next
    sentinel when the first of the URL is frozen (SIGSTOP)."""
    stack = await start_stack(**SETTINGS)
    listener = app_of(stack.gateway)[LISTENER]
    await asyncio.wait_for(listener.connected.wait(), 5)
    before = listener.reconnects
    sentinels.sentinels[0].pause()
    primary = aioredis.Redis(port=sentinels.primary.port)
    try:
        assert await primary.client_kill_filter(_type="pubsub") >= 1
    finally:
        await primary.aclose()
    loop = asyncio.get_running_loop()
    lost = loop.time()
    while listener.reconnects == before and loop.time() - lost < 10:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert listener.reconnects > before, "the listener never subscribed again"
    assert listener.connected.is_set()
    figures["listener_back_seconds"] = round(loop.time() - lost, 3)
    assert (await stack.gateway.get("/_keygate/readyz")).status == 200


async def assert_state_on_new_primary(
    stack: Stack,
    gateways: list[TestClient[Any, Any]],
    sentinels: SentinelDeployment,
    plain_ids: list[str],
    served_since_kill: int,
) -> None:
    """Usage counts, creation limits and failed-attempt counters are written to the new
    primary: nothing is stuck on a dead connection."""
    for gateway in gateways:
        await app_of(gateway)[USAGE].flush()
    ki = stack.introspector
    owner = await ki.user("bob@example.com")
    created = await ki.create_ok(owner, name="after the failover")
    assert created["token"]
    # Only tokens without a fast verifier reach argon2, behind the failed-attempt counters.
    legacy = await ki.legacy_token(owner)
    wrong = generate_token(parse_token(legacy).public_id)[0]
    assert (await gateways[0].get("/x", headers=bearer(wrong))).status == 401
    primary = aioredis.Redis(port=await asyncio.to_thread(sentinels.current_primary_port))
    try:
        counted = 0
        for token_id in plain_ids:
            async for key in primary.scan_iter(match=f"kg:use:{{{token_id}}}:*"):
                counted += int(await primary.get(key) or 0)
        # Counts the dead primary took before it died may be lost; none made since may be.
        assert counted >= served_since_kill
        assert await primary.exists(token_create_key(f"u:{owner.id}"))
        assert await primary.exists(failed_token_key(parse_token(wrong).public_id))
    finally:
        await primary.aclose()


def app_of(client: TestClient[Any, Any]) -> web.Application:
    """The application a test client serves."""
    assert isinstance(client.server, TestServer)
    return client.server.app


async def _metrics(gateway: TestClient[Any, Any]) -> str:
    response = await gateway.get("/_keygate/metrics")
    assert response.status == 200
    return await response.text()
