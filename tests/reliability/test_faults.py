"""Dependencies fail while traffic flows: what clients see during the fault and after it.

Each test keeps a fixed number of concurrent clients busy against a real gateway (real Postgres,
Redis, introspector and upstream behind it), breaks one dependency for real (stop, SIGSTOP or
SIGKILL), restores it, and asserts on the recorded requests: the documented answer during the
fault, never a 401 for a good token, never an unauthenticated pass, bounded waits, and full
recovery within 10 s without restarting anything keygate runs.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import uuid
from collections import Counter
from typing import Any

import pytest
from aiohttp import web

from keygate_core.token_format import generate_token, parse_token
from tests.harness.figures import Figures
from tests.harness.fixtures import Spawn
from tests.harness.servers import PostgresServer, RedisServer, free_port
from tests.harness.stack import API, StartStack, introspector_env
from tests.reliability.measure import Outcome, Traffic, percentile, recovery_seconds, sample

RECOVERY_BOUND = 10.0


def statuses(outcomes: list[Outcome]) -> Counter[int]:
    return Counter(o.status for o in outcomes)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rotating(tokens: list[str], path: str = "/x") -> itertools.cycle[tuple[str, dict[str, str]]]:
    return itertools.cycle([(path, bearer(t)) for t in tokens])


async def test_postgres_down_cached_tokens_work_uncached_get_503_then_recover(
    start_stack: StartStack, pg_server: PostgresServer, figures: Figures
) -> None:
    """Postgres stopped under load with the gateway's L1 cache off: 1,000 requests → tokens
    cached in Redis all 200, uncached all 503 + Retry-After, cookies 200, zero 401s; Postgres
    back → every token 200 within 10 s, nothing restarted."""
    # Without the L1 cache every bearer request goes to the introspector, so "cached" means the
    # introspector's Redis cache — the layer that must carry on without Postgres.
    stack = await start_stack(KEYGATE_L1_CACHE_SIZE="0", KEYGATE_RATE_LIMIT_PER_MINUTE="100000")
    alice = await stack.introspector.user("alice@example.com")
    warm = [await stack.token_for(alice, name=f"warm {i}") for i in range(10)]
    cold = [await stack.token_for(alice, name=f"cold {i}") for i in range(10)]
    for token in warm:
        assert (await stack.gateway.get("/x", headers=bearer(token))).status == 200
    base = str(stack.gateway.make_url("")).rstrip("/")
    warm_turns = rotating(warm)
    # Until Postgres stops, the "cold" clients send warm tokens: a cold token must first be
    # seen while Postgres is down.
    cold_turns = {"now": rotating(warm)}
    kinds = {
        "warm": lambda: next(warm_turns),
        "cold": lambda: next(cold_turns["now"]),
        "cookie": lambda: ("/x", {"Cookie": "sid=abc"}),
    }
    loop = asyncio.get_running_loop()
    async with Traffic(base, kinds, concurrency=16) as traffic:
        await traffic.wait_for(30)
        await asyncio.to_thread(pg_server.stop)
        stopped = loop.time()
        cold_turns["now"] = rotating(cold)
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
    by_kind = {kind: traffic.within(stopped, restarting, kind) for kind in kinds}
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


REDIS_TIMEOUT = 0.2
#: keygate's default: a cold verification during a Redis blackout waits for up to three Redis
#: timeouts in the introspector (cache read, attempt counter, cache write) plus argon2.
INTROSPECTOR_TIMEOUT = 2.0
#: Scheduling slack on a busy 2-core machine.
MARGIN = 0.5
FAULT_SECONDS = 3.0
#: How long the outage lasts past the revoke's first second, for the "refused" window to fill.
REVOKED_WINDOW = 3.0


#: The suite's introspectors deliver pending revocations this often (KEYGATE_OUTBOX_POLL_SECONDS).
OUTBOX_POLL = 0.1


@pytest.mark.parametrize("fault", ["stopped", "paused"])
async def test_redis_down_waits_are_bounded_answers_correct_revokes_honoured(
    start_stack: StartStack, redis_server: RedisServer, figures: Figures, fault: str
) -> None:
    """Redis stopped (or SIGSTOPped, keeping its stale cache) under load: good tokens 200, bad
    ones 401, cookies 200; no request waits past its timeouts plus a margin; every limiter
    decision made without Redis is counted; a token revoked through the API meanwhile is
    refused from a second after the 204 on. Redis back → all correct within 10 s, the revoke
    still honoured, the limiter on Redis again."""
    stack = await start_stack(
        KEYGATE_REDIS_TIMEOUT_MS=str(int(REDIS_TIMEOUT * 1000)),
        KEYGATE_INTROSPECTOR_TIMEOUT_MS=str(int(INTROSPECTOR_TIMEOUT * 1000)),
        KEYGATE_RATE_LIMIT_PER_MINUTE="100000",
    )
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
    for token in (*warm, doomed["token"]):
        assert (await stack.gateway.get("/x", headers=bearer(token))).status == 200
    base = str(stack.gateway.make_url("")).rstrip("/")
    warm_turns = rotating(warm)
    cold_turns = {"now": rotating(warm)}
    kinds = {
        "warm": lambda: next(warm_turns),
        "cold": lambda: next(cold_turns["now"]),
        "doomed": lambda: ("/x", bearer(doomed["token"])),
        "revoked": lambda: ("/x", bearer(revoked["token"])),
        "unknown": lambda: ("/x", bearer(generate_token()[0])),
        "tampered": lambda: ("/x", bearer(tampered)),
        "cookie": lambda: ("/x", {"Cookie": "sid=abc"}),
    }
    expected = {
        "warm": {200},
        "cold": {200},
        "doomed": {200, 401},
        "revoked": {401},
        "unknown": {401},
        "tampered": {401, 429},
        "cookie": {200},
    }
    loop = asyncio.get_running_loop()
    degraded_before = sample(await stack.metrics(), "keygate_ratelimit_degraded_total")
    async with Traffic(base, kinds, concurrency=16) as traffic:
        await traffic.wait_for(60)
        (redis_server.stop if fault == "stopped" else redis_server.pause)()
        broken = loop.time()
        cold_turns["now"] = rotating(cold)
        try:
            # Let the revocation listener notice the outage (a paused Redis takes ~1.5 s).
            await asyncio.sleep(FAULT_SECONDS / 2)
            response = await stack.gateway.delete(
                f"{API}/api-tokens/{doomed['id']}", headers=bearer(warm[0])
            )
            assert response.status == 204, await response.text()
            revoke_done = loop.time()
            # Long enough after the revoke's 1 s for requests that each wait for the paused
            # Redis (up to ~1.3 s) to start and finish inside the outage.
            await asyncio.sleep(1.0 + REVOKED_WINDOW)
        finally:
            repairing = loop.time()
            (redis_server.start if fault == "stopped" else redis_server.resume)()
        restored = loop.time()
        await traffic.wait_for(300, within=30)
        # Past the revocation's outbox delivery, so the "after" window below has traffic.
        await asyncio.sleep(max(0.0, restored + OUTBOX_POLL + 1.5 - loop.time()))
        degraded_mid = sample(await stack.metrics(), "keygate_ratelimit_degraded_total")
        mid = loop.time()
        await traffic.wait_for(300, within=30)
    during = traffic.within(broken, repairing)
    assert len(during) >= 50 and {o.kind for o in during} == set(kinds)
    for kind, allowed in expected.items():
        seen = statuses(traffic.within(broken, repairing, kind))
        assert set(seen) <= allowed, (kind, seen)
    # Bearer requests may wait for the introspector (bounded by its timeout: a 503, which did
    # not happen) and then for the limiter's Redis call; cookie requests never wait for Redis.
    bearer_waits = [o.elapsed for o in during if o.kind != "cookie"]
    cookie_waits = [o.elapsed for o in during if o.kind == "cookie"]
    assert max(bearer_waits) <= INTROSPECTOR_TIMEOUT + REDIS_TIMEOUT + MARGIN
    assert max(cookie_waits) <= MARGIN
    # Every good-token request answered during the fault was a degraded limiter decision.
    answered = [o for o in during if o.kind in ("warm", "cold")]
    assert degraded_mid - degraded_before >= len(answered)
    # The revoke: refused from a second after the 204 until Redis returned, and from one
    # outbox delivery (plus that second) after it on. In between, a stale Redis entry may
    # answer until the tombstone is delivered: the documented window, measured below.
    in_outage = traffic.within(revoke_done + 1.0, repairing, "doomed")
    after = traffic.during(restored + OUTBOX_POLL + 1.0, loop.time(), "doomed")
    assert in_outage, "no request for the revoked token completed during the outage"
    assert after, "no request for the revoked token after recovery"
    assert set(statuses(in_outage)) == {401} and set(statuses(after)) == {401}
    healthy = {**expected, "doomed": {401}}
    recovery = recovery_seconds(
        [o for o in traffic.outcomes if o.kind != "doomed"],
        restored,
        lambda o: o.status in healthy[o.kind],
    )
    assert recovery <= RECOVERY_BOUND
    # Back on Redis: no more degraded decisions.
    assert sample(await stack.metrics(), "keygate_ratelimit_degraded_total") == degraded_mid
    assert traffic.during(mid, loop.time())
    window = traffic.during(repairing, restored + OUTBOX_POLL + 1.0, "doomed")
    refusals = [o.finished for o in traffic.outcomes if o.kind == "doomed" and o.status == 401]
    figures.update(
        fault=fault,
        during=len(during),
        bearer_p50_ms=percentile(bearer_waits, 50) * 1000,
        bearer_p99_ms=percentile(bearer_waits, 99) * 1000,
        bearer_max_ms=max(bearer_waits) * 1000,
        cookie_max_ms=max(cookie_waits) * 1000,
        degraded=int(degraded_mid - degraded_before),
        recovery_s=recovery,
        revoke_refused_after_ms=(min(refusals) - revoke_done) * 1000,
        revoked_accepted_at_recovery=sum(o.status == 200 for o in window),
    )


async def test_introspector_killed_then_frozen_bearer_503_cookies_unaffected_then_recover(
    start_stack: StartStack,
    spawn: Spawn,
    database_url: str,
    redis_url: str,
    figures: Figures,
) -> None:
    """The introspector process SIGKILLed, restarted, then SIGSTOPped and resumed, under load:
    tokens the gateway has not cached get 503 + Retry-After (never 401, never forwarded), the
    cached ones and cookie traffic carry on; each time it is back, all succeed within 10 s."""
    process = await spawn("introspector", introspector_env(database_url, redis_url))
    stack = await start_stack(
        KEYGATE_INTROSPECTOR_URL=process.url,
        KEYGATE_INTROSPECTOR_TIMEOUT_MS="1000",
        KEYGATE_L1_CACHE_TTL_SECONDS="60",
        KEYGATE_RATE_LIMIT_PER_MINUTE="100000",
    )
    alice = await stack.introspector.user("alice@example.com")
    warm = [await stack.token_for(alice, name=f"warm {i}") for i in range(4)]
    for token in warm:
        assert (await stack.gateway.get("/x", headers=bearer(token))).status == 200
    base = str(stack.gateway.make_url("")).rstrip("/")
    warm_turns = rotating(warm)
    cold_turns = {"now": rotating(warm)}
    kinds = {
        "warm": lambda: next(warm_turns),
        "cold": lambda: next(cold_turns["now"]),
        "unknown": lambda: ("/x", bearer(generate_token()[0])),
        "malformed": lambda: ("/x", bearer("kg_not_a_token")),
        "cookie": lambda: ("/x", {"Cookie": "sid=abc"}),
    }
    during_outage = {"warm": {200}, "cold": {503}, "unknown": {503}, "malformed": {401}}
    during_outage["cookie"] = {200}
    healthy = {"warm": {200}, "cold": {200}, "unknown": {401}, "malformed": {401}}
    healthy["cookie"] = {200}
    loop = asyncio.get_running_loop()
    windows: dict[str, tuple[float, float, float]] = {}
    async with Traffic(base, kinds, concurrency=16) as traffic:
        await traffic.wait_for(50)
        for fault in ("killed", "frozen"):
            # Tokens the gateway has never seen: only the introspector can vouch for them.
            fresh = [await stack.token_for(alice, name=f"{fault} {i}") for i in range(4)]
            (process.kill if fault == "killed" else lambda: process.signal(signal.SIGSTOP))()
            broken = loop.time()
            cold_turns["now"] = rotating(fresh)
            await asyncio.sleep(2.5)
            repairing = loop.time()
            if fault == "killed":
                await process.start()
            else:
                process.signal(signal.SIGCONT)
            windows[fault] = (broken, repairing, loop.time())
            await traffic.wait_for(200, within=30)
    for fault, (broken, repairing, restored) in windows.items():
        during = traffic.within(broken, repairing)
        assert {o.kind for o in during} == set(kinds), fault
        for kind, allowed in during_outage.items():
            seen = statuses(traffic.within(broken, repairing, kind))
            assert set(seen) <= allowed, (fault, kind, seen)
        refused = [o for o in during if o.status == 503]
        assert {(o.retry_after, o.reason) for o in refused} == {("1", "auth_unavailable")}
        # A frozen introspector is given up on after the gateway's introspection timeout.
        assert max(o.elapsed for o in refused) <= 1.0 + MARGIN
        # Up to the next fault: requests in flight when it struck belong to it.
        until = windows["frozen"][0] if fault == "killed" else loop.time()
        recovery = recovery_seconds(
            traffic.within(restored, until), restored, lambda o: o.status in healthy[o.kind]
        )
        assert recovery <= RECOVERY_BOUND, (fault, recovery)
        assert [o for o in traffic.within(restored, until, "cold") if o.status == 200]
        figures.update(
            {
                f"{fault}_requests": len(during),
                f"{fault}_503": len(refused),
                f"{fault}_503_max_ms": max(o.elapsed for o in refused) * 1000,
                f"{fault}_recovery_s": recovery,
            }
        )
    # Nothing refused reached the upstream: it saw the warm-up and the 200s, no more.
    ok = [o for o in traffic.outcomes if o.status == 200]
    assert len(stack.upstream.requests) == len(warm) + len(ok)


async def test_an_answer_that_raced_a_revocation_counts_from_when_it_was_asked(
    start_stack: StartStack, aiohttp_server: Any
) -> None:
    """Without the revocation channel, an active answer asked for just before a revoke and
    received 0.6 s later is trusted for one second from the ask, not from its arrival."""
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
