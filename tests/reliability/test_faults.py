"""Dependencies fail while traffic flows: what clients see during the fault and after it.

Each test keeps a fixed number of concurrent clients busy against a real gateway (real Postgres,
Redis, introspector and upstream behind it), breaks one dependency for real (stop, SIGSTOP or
SIGKILL), restores it, and asserts on the recorded requests: the documented answer during the
fault, never a 401 for a good token, never an unauthenticated pass, bounded waits, and full
recovery within 10 s without restarting anything keygate runs. Redis faults, which also involve
revocation and the rate limiter, are in ``test_redis_faults.py``.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

from aiohttp import web

from keygate_core.token_format import generate_token
from tests.harness.figures import Figures
from tests.harness.fixtures import Spawn
from tests.harness.servers import PostgresServer, free_port
from tests.harness.services import Service
from tests.harness.stack import StartStack, introspector_env
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
from tests.reliability.measure import Traffic, percentile, recovery_seconds


async def test_postgres_down_cached_tokens_work_uncached_get_503_then_recover(
    start_stack: StartStack, pg_server: PostgresServer, figures: Figures
) -> None:
    """Postgres down under load: Redis-cached tokens 200, the rest 503, no 401; then all 200."""
    # 1,000 requests during the outage, with the gateway's L1 cache off: tokens cached in Redis
    # all 200, uncached all 503 + Retry-After, cookies 200, zero 401s; Postgres back → every
    # token 200 within 10 s, nothing restarted.
    # Without the L1 cache every bearer request goes to the introspector, so "cached" means the
    # introspector's Redis cache — the layer that must carry on without Postgres.
    stack = await start_stack(KEYGATE_L1_CACHE_SIZE="0", KEYGATE_RATE_LIMIT_PER_MINUTE="100000")
    alice = await stack.introspector.user("alice@example.com")
    warm = [await stack.token_for(alice, name=f"warm {i}") for i in range(10)]
    cold = [await stack.token_for(alice, name=f"cold {i}") for i in range(10)]
    await warm_up(stack.gateway, warm)
    mix = WarmAndCold(warm, cookie=lambda: ("/x", {"Cookie": "sid=abc"}))
    loop = asyncio.get_running_loop()
    async with Traffic(base_url(stack.gateway), mix.kinds, concurrency=16) as traffic:
        await traffic.wait_for(30)
        await asyncio.to_thread(pg_server.stop)
        stopped = loop.time()
        mix.go_cold(cold)
        try:
            await traffic.wait_for(1000)
        finally:
            restarting = loop.time()
            await asyncio.to_thread(pg_server.start)
        restored = loop.time()
        await traffic.wait_for(300, kind="cold", within=30)
        await asyncio.sleep(1.0)
    during = traffic.within(stopped, restarting)
    assert len(during) >= 950
    by_kind = {kind: traffic.within(stopped, restarting, kind) for kind in mix.kinds}
    assert statuses(during)[401] == 0
    assert set(statuses(by_kind["warm"])) == {200}, statuses(by_kind["warm"])
    assert set(statuses(by_kind["cookie"])) == {200}, statuses(by_kind["cookie"])
    assert set(statuses(by_kind["cold"])) == {503}, statuses(by_kind["cold"])
    assert {(o.retry_after, o.reason) for o in by_kind["cold"]} == {("1", "auth_unavailable")}
    recovery = recovery_seconds(traffic.outcomes, restored, lambda o: o.status == 200)
    assert recovery <= RECOVERY_BOUND
    after = traffic.during(restored + recovery, loop.time())
    assert after and set(statuses(after)) == {200}
    # The upstream saw exactly the warm-up and the answered requests: no refusal reached it.
    ok = [o for o in traffic.outcomes if o.status == 200]
    assert len(stack.upstream.requests) == len(warm) + len(ok)
    figures.update(
        during_outage=len(during),
        warm_ok=len(by_kind["warm"]),
        cold_503=len(by_kind["cold"]),
        cookie_ok=len(by_kind["cookie"]),
        recovery_s=recovery,
        cold_p99_ms=percentile([o.elapsed for o in by_kind["cold"]], 99) * 1000,
    )


#: What each kind gets while the introspector is down, and once it is back.
INTROSPECTOR_DOWN = {
    "warm": {200},
    "cold": {503},
    "unknown": {503},
    "malformed": {401},
    "cookie": {200},
}
INTROSPECTOR_UP = {
    "warm": {200},
    "cold": {200},
    "unknown": {401},
    "malformed": {401},
    "cookie": {200},
}
#: How long each introspector fault lasts.
INTROSPECTOR_FAULT_SECONDS = 2.5


def break_introspector(process: Service, fault: str) -> None:
    """SIGKILL the introspector ("killed") or SIGSTOP it ("frozen")."""
    if fault == "killed":
        process.kill()
    else:
        process.signal(signal.SIGSTOP)


async def repair_introspector(process: Service, fault: str) -> None:
    """Start a killed introspector again on its port, or resume a frozen one."""
    if fault == "killed":
        await process.start()
    else:
        process.signal(signal.SIGCONT)


def assert_introspector_outage(
    traffic: Traffic, fault: str, window: tuple[float, float, float], until: float
) -> dict[str, float]:
    """The answers during one introspector fault and the recovery after it; its figures.

    ``window`` is (broken, repairing, restored); recovery is judged on requests up to ``until``.
    """
    broken, repairing, restored = window
    during = traffic.within(broken, repairing)
    assert {o.kind for o in during} == set(INTROSPECTOR_DOWN), fault
    assert_answers(traffic, broken, repairing, INTROSPECTOR_DOWN, fault)
    refused = [o for o in during if o.status == 503]
    assert {(o.retry_after, o.reason) for o in refused} == {("1", "auth_unavailable")}
    # A frozen introspector is given up on after the gateway's introspection timeout.
    assert max(o.elapsed for o in refused) <= 1.0 + MARGIN
    recovery = recovery_seconds(
        traffic.within(restored, until),
        restored,
        lambda o: o.status in INTROSPECTOR_UP[o.kind],
    )
    assert recovery <= RECOVERY_BOUND, (fault, recovery)
    assert [o for o in traffic.within(restored, until, "cold") if o.status == 200]
    return {
        f"{fault}_requests": len(during),
        f"{fault}_503": len(refused),
        f"{fault}_503_max_ms": max(o.elapsed for o in refused) * 1000,
        f"{fault}_recovery_s": recovery,
    }


async def test_introspector_killed_then_frozen_bearer_503_cookies_unaffected_then_recover(
    start_stack: StartStack,
    spawn: Spawn,
    database_url: str,
    redis_url: str,
    figures: Figures,
) -> None:
    """Introspector killed, then frozen, under load: uncached tokens 503, the rest unaffected."""
    # The introspector process is SIGKILLed and restarted, then SIGSTOPped and resumed: tokens
    # the gateway has not cached get 503 + Retry-After (never 401, never forwarded), the cached
    # ones and cookie traffic carry on; each time it is back, all succeed within 10 s.
    process = await spawn("introspector", introspector_env(database_url, redis_url))
    stack = await start_stack(
        KEYGATE_INTROSPECTOR_URL=process.url,
        KEYGATE_INTROSPECTOR_TIMEOUT_MS="1000",
        KEYGATE_L1_CACHE_TTL_SECONDS="60",
        KEYGATE_RATE_LIMIT_PER_MINUTE="100000",
    )
    alice = await stack.introspector.user("alice@example.com")
    warm = [await stack.token_for(alice, name=f"warm {i}") for i in range(4)]
    await warm_up(stack.gateway, warm)
    mix = WarmAndCold(
        warm,
        unknown=lambda: ("/x", bearer(generate_token()[0])),
        malformed=lambda: ("/x", bearer("kg_not_a_token")),
        cookie=lambda: ("/x", {"Cookie": "sid=abc"}),
    )
    loop = asyncio.get_running_loop()
    windows: dict[str, tuple[float, float, float]] = {}
    async with Traffic(base_url(stack.gateway), mix.kinds, concurrency=16) as traffic:
        await traffic.wait_for(50)
        for fault in ("killed", "frozen"):
            # Tokens the gateway has never seen: only the introspector can vouch for them.
            fresh = [await stack.token_for(alice, name=f"{fault} {i}") for i in range(4)]
            break_introspector(process, fault)
            broken = loop.time()
            mix.go_cold(fresh)
            await asyncio.sleep(INTROSPECTOR_FAULT_SECONDS)
            repairing = loop.time()
            await repair_introspector(process, fault)
            windows[fault] = (broken, repairing, loop.time())
            await traffic.wait_for(200, within=30)
    for fault, window in windows.items():
        # Up to the next fault: requests in flight when it struck belong to it.
        until = windows["frozen"][0] if fault == "killed" else loop.time()
        figures.update(assert_introspector_outage(traffic, fault, window, until))
    # Nothing refused reached the upstream: it saw the warm-up and the 200s, no more.
    ok = [o for o in traffic.outcomes if o.status == 200]
    assert len(stack.upstream.requests) == len(warm) + len(ok)


async def test_an_answer_that_raced_a_revocation_counts_from_when_it_was_asked(
    start_stack: StartStack, aiohttp_server: Any
) -> None:
    """Without revocation messages, a raced answer is trusted one second from its ask, no longer."""
    # An active answer asked for just before a revoke and received 0.6 s later is trusted for
    # one second from the ask, not from its arrival.
    revoked = asyncio.Event()
    asks = []
    user_id, token_id = str(uuid.uuid4()), str(uuid.uuid4())
    token, parts = generate_token()

    async def introspect(request: web.Request) -> web.Response:
        # Slow, and answering as of the moment it was asked (as Postgres would).
        asks.append(revoked.is_set())
        if revoked.is_set():
            return web.json_response({"active": False})
        await asyncio.sleep(0.6)
        return web.json_response(
            {"active": True, "sub": user_id, "token_id": token_id, "public_id": parts.public_id}
            | {"scope": "PERSONAL", "username": "alice@example.com", "token_type": "Bearer"}
        )

    authority = web.Application()
    authority.router.add_post("/introspect", introspect)
    server = await aiohttp_server(authority)
    stack = await start_stack(
        KEYGATE_INTROSPECTOR_URL=str(server.make_url("")).rstrip("/"),
        # Nothing listens there: the gateway never hears revocations.
        KEYGATE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    loop = asyncio.get_running_loop()
    asked = loop.time()
    first = asyncio.create_task(stack.gateway.get("/x", headers=bearer(token)))
    await asyncio.sleep(0.2)
    revoked.set()  # the revoke commits while the answer is on its way
    assert (await first).status == 200
    # Within a second of the ask the cached answer is still used ...
    assert (await stack.gateway.get("/x", headers=bearer(token))).status == 200
    assert loop.time() - asked < 1.0 and asks == [False]
    # ... and not after it, although it arrived less than a second ago.
    await asyncio.sleep(max(0.0, asked + 1.3 - loop.time()))
    assert (await stack.gateway.get("/x", headers=bearer(token))).status == 401
    assert asks == [False, True]
