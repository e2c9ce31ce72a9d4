"""Redis stops or freezes while traffic flows: bounded waits, right answers, revokes honoured.

Like the other fault tests (``test_faults.py``), this keeps 16 clients busy against a real
gateway and breaks Redis for real: stopped, or SIGSTOPped so that it keeps its stale cache and
accepts connections without answering. Good tokens stay 200, bad ones 401, cookies 200; no
request waits past its timeouts plus a margin; every limiter decision made without Redis is
counted. A token revoked through the API meanwhile is refused from a second after the 204 on.
Once Redis is back, all answers are right within 10 s, the revoke is still honoured and the
limiter is on Redis again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.pipeline.limit_lease import LEASE_SECONDS
from keygate_core.token_format import generate_token, parse_token
from tests.harness.figures import Figures
from tests.harness.servers import RedisServer
from tests.harness.stack import API, Stack, StartStack
from tests.reliability.fault_traffic import (
    MARGIN,
    RECOVERY_BOUND,
    WarmAndCold,
    assert_answers,
    base_url,
    bearer,
    statuses,
    warm_up,
)
from tests.reliability.measure import Outcome, Traffic, percentile, recovery_seconds, sample

REDIS_TIMEOUT = 0.2
#: keygate's default: a cold verification during a Redis blackout waits for up to three Redis
#: timeouts in the introspector (cache read, attempt counter, cache write) plus argon2.
INTROSPECTOR_TIMEOUT = 2.0
FAULT_SECONDS = 3.0
#: How long the outage lasts past the revoke's first second, for the "refused" window to fill.
REVOKED_WINDOW = 3.0
#: The suite's introspectors deliver pending revocations this often (KEYGATE_OUTBOX_POLL_SECONDS).
OUTBOX_POLL = 0.1

#: What each kind may get while Redis is down ("doomed" is revoked in the middle of it).
EXPECTED = {
    "warm": {200},
    "cold": {200},
    "doomed": {200, 401},
    "revoked": {401},
    "unknown": {401},
    "tampered": {401, 429},
    "cookie": {200},
}
#: What each kind gets once Redis is back.
HEALTHY = {**EXPECTED, "doomed": {401}}
DEGRADED = "keygate_ratelimit_degraded_total"


@dataclass
class Callers:
    """The request mix, its cold tokens, and the token revoked mid-outage ("doomed")."""

    mix: WarmAndCold
    warm: list[str]
    cold: list[str]
    doomed: dict[str, Any]


async def callers(stack: Stack) -> Callers:
    """Issue every kind of token the clients send; warm ones and the doomed one are used once."""
    ki = stack.introspector
    alice = await ki.user("alice@example.com")
    warm = [await stack.token_for(alice, name=f"warm {i}") for i in range(4)]
    cold = [await stack.token_for(alice, name=f"cold {i}") for i in range(4)]
    revoked = await ki.create_ok(alice, name="revoked")
    assert (await ki.revoke(alice, revoked["id"])).status == 204
    doomed = await ki.create_ok(alice, name="doomed")
    # Wrong secrets for a token nobody else uses: its id gets throttled (401, then 429).
    victim = await stack.token_for(alice, name="victim")
    tampered = generate_token(parse_token(victim).public_id)[0]
    await warm_up(stack.gateway, [*warm, doomed["token"]])
    mix = WarmAndCold(
        warm,
        doomed=lambda: ("/x", bearer(doomed["token"])),
        revoked=lambda: ("/x", bearer(revoked["token"])),
        unknown=lambda: ("/x", bearer(generate_token()[0])),
        tampered=lambda: ("/x", bearer(tampered)),
        cookie=lambda: ("/x", {"Cookie": "sid=abc"}),
    )
    return Callers(mix, warm, cold, doomed)


@dataclass
class RedisOutage:
    """One Redis outage under traffic with a revoke in its middle; its moments (loop clock).

    ``fault`` is "stopped" or "paused" (SIGSTOP). ``degraded_mid`` is the gateway's count of
    limiter decisions made without Redis, taken at ``mid``: Redis back, the revoke delivered.
    """

    stack: Stack
    server: RedisServer
    fault: str
    broken: float = 0.0
    revoke_done: float = 0.0
    repairing: float = 0.0
    restored: float = 0.0
    mid: float = 0.0
    degraded_mid: float = 0.0

    async def degraded(self) -> float:
        """Limiter decisions the gateway made without Redis so far."""
        return sample(await self.stack.metrics(), DEGRADED)

    async def run(self, traffic: Traffic, callers: Callers) -> None:
        """Break Redis, go cold, revoke the doomed token, restore Redis; traffic on both sides."""
        loop = asyncio.get_running_loop()
        await traffic.wait_for(60)
        (self.server.stop if self.fault == "stopped" else self.server.pause)()
        self.broken = loop.time()
        callers.mix.go_cold(callers.cold)
        try:
            await self._revoke(callers)
        finally:
            self.repairing = loop.time()
            (self.server.start if self.fault == "stopped" else self.server.resume)()
        self.restored = loop.time()
        await traffic.wait_for(300, within=30)
        # Past the revocation's outbox delivery, so the "after" window below has traffic.
        await asyncio.sleep(max(0.0, self.restored + OUTBOX_POLL + 1.5 - loop.time()))
        self.degraded_mid = await self.degraded()
        self.mid = loop.time()
        await traffic.wait_for(300, within=30)

    async def _revoke(self, callers: Callers) -> None:
        # Let the revocation listener notice the outage (a paused Redis takes ~1.5 s).
        await asyncio.sleep(FAULT_SECONDS / 2)
        response = await self.stack.gateway.delete(
            f"{API}/api-tokens/{callers.doomed['id']}", headers=bearer(callers.warm[0])
        )
        assert response.status == 204, await response.text()
        self.revoke_done = asyncio.get_running_loop().time()
        # Long enough after the revoke's 1 s for requests that each wait for the paused
        # Redis (up to ~1.3 s) to start and finish inside the outage.
        await asyncio.sleep(1.0 + REVOKED_WINDOW)

    @property
    def revoke_delivered(self) -> float:
        """One outbox delivery plus a second after Redis returned: the revoke holds again."""
        return self.restored + OUTBOX_POLL + 1.0


def assert_waits_bounded(during: list[Outcome]) -> tuple[list[float], list[float]]:
    """No request during the outage waited past its bound; the bearer and the cookie waits."""
    # Bearer requests may wait for the introspector (bounded by its timeout: a 503, which did
    # not happen) and then for the limiter's Redis call; cookie requests never wait for Redis.
    bearer_waits = [o.elapsed for o in during if o.kind != "cookie"]
    cookie_waits = [o.elapsed for o in during if o.kind == "cookie"]
    assert max(bearer_waits) <= INTROSPECTOR_TIMEOUT + REDIS_TIMEOUT + MARGIN
    assert max(cookie_waits) <= MARGIN
    return bearer_waits, cookie_waits


def assert_revoke_honoured(traffic: Traffic, outage: RedisOutage) -> None:
    """The doomed token was refused from a second after the 204 until Redis returned, and
    from :attr:`RedisOutage.revoke_delivered` on."""
    # In between, a stale Redis entry may answer until the tombstone is delivered: the
    # documented window, measured in the test's figures.
    in_outage = traffic.within(outage.revoke_done + 1.0, outage.repairing, "doomed")
    now = asyncio.get_running_loop().time()
    after = traffic.during(outage.revoke_delivered, now, "doomed")
    assert in_outage, "no request for the revoked token completed during the outage"
    assert after, "no request for the revoked token after recovery"
    assert set(statuses(in_outage)) == {401} and set(statuses(after)) == {401}


@pytest.mark.parametrize("fault", ["stopped", "paused"])
async def test_redis_down_waits_are_bounded_answers_correct_revokes_honoured(
    start_stack: StartStack, redis_server: RedisServer, figures: Figures, fault: str
) -> None:
    """Redis stopped or frozen under load: bounded waits, right answers, a revoke honoured."""
    stack = await start_stack(
        KEYGATE_REDIS_TIMEOUT_MS=str(int(REDIS_TIMEOUT * 1000)),
        KEYGATE_INTROSPECTOR_TIMEOUT_MS=str(int(INTROSPECTOR_TIMEOUT * 1000)),
        KEYGATE_RATE_LIMIT_PER_MINUTE="100000",
    )
    sent = await callers(stack)
    loop = asyncio.get_running_loop()
    outage = RedisOutage(stack, redis_server, fault)
    degraded_before = await outage.degraded()
    async with Traffic(base_url(stack.gateway), sent.mix.kinds, concurrency=16) as traffic:
        await outage.run(traffic, sent)
    during = traffic.within(outage.broken, outage.repairing)
    assert len(during) >= 50 and {o.kind for o in during} == set(sent.mix.kinds)
    assert_answers(traffic, outage.broken, outage.repairing, EXPECTED)
    bearer_waits, cookie_waits = assert_waits_bounded(during)
    # Every good-token request answered during the fault was a degraded limiter decision,
    # but for those its first second, which a lease taken from Redis before it may answer.
    answered = [
        o
        for o in during
        if o.kind in ("warm", "cold") and o.started >= outage.broken + LEASE_SECONDS
    ]
    assert outage.degraded_mid - degraded_before >= len(answered)
    assert_revoke_honoured(traffic, outage)
    recovery = recovery_seconds(
        [o for o in traffic.outcomes if o.kind != "doomed"],
        outage.restored,
        lambda o: o.status in HEALTHY[o.kind],
    )
    assert recovery <= RECOVERY_BOUND
    # Back on Redis: no more degraded decisions.
    assert await outage.degraded() == outage.degraded_mid
    assert traffic.during(outage.mid, loop.time())
    window = traffic.during(outage.repairing, outage.revoke_delivered, "doomed")
    refusals = [o.finished for o in traffic.outcomes if o.kind == "doomed" and o.status == 401]
    figures.update(
        fault=fault,
        during=len(during),
        bearer_p50_ms=percentile(bearer_waits, 50) * 1000,
        bearer_p99_ms=percentile(bearer_waits, 99) * 1000,
        bearer_max_ms=max(bearer_waits) * 1000,
        cookie_max_ms=max(cookie_waits) * 1000,
        degraded=int(outage.degraded_mid - degraded_before),
        recovery_s=recovery,
        revoke_refused_after_ms=(min(refusals) - outage.revoke_done) * 1000,
        revoked_accepted_at_recovery=sum(o.status == 200 for o in window),
    )
