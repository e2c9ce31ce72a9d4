"""Cost attacks: floods of well-formed tokens that are not valid must not make keygate burn
argon2 time, stall the gateway's event loop or slow down the owners of real tokens.

As deployed, the introspector is a process of its own (``keygate introspector``: argon2, Postgres
and Redis work happen there); the gateway runs in this test's process, where a probe measures how
late its event loop wakes up. The floods come from a third process, so the client's own work does
not count as the gateway's lag.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable

import redis.asyncio as aioredis

from introspector.appkeys import REDIS
from keygate_core.token_format import parse_token
from tests.harness.figures import Figures
from tests.harness.fixtures import Spawn
from tests.harness.stack import Introspector, StartIntrospector, StartStack, introspector_env
from tests.reliability.flood import (
    ARGON2,
    FLOOD,
    argon2_runs,
    bearer,
    flood,
    flood_figures,
    tamper,
)
from tests.reliability.measure import percentile, sample, send_all

ADDRESS_LIMIT = 30  # keygate's default KEYGATE_FAILED_VERIFY_LIMIT_PER_ADDRESS
LAG_BOUND = 0.050
PASSWORD = "correct horse battery staple"


def flood_introspector_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The introspector process's settings: the per-address limit, and one argon2 slot."""
    return introspector_env(
        database_url,
        redis_url,
        KEYGATE_FAILED_VERIFY_LIMIT_PER_ADDRESS=str(ADDRESS_LIMIT),
        # Two cores shared by everything here: with two argon2 threads the gateway's own
        # thread would wait for a core while the attacker's allowance is verified
        # (docs/reliability.md, "Why one argon2 slot").
        KEYGATE_ARGON2_MAX_CONCURRENCY="1",
        KEYGATE_LOG_LEVEL="warning",
    )


async def test_floods_of_unknown_ids_and_wrong_secrets(
    start_stack: StartStack,
    spawn: Spawn,
    database_url: str,
    redis_url: str,
    figures: Figures,
) -> None:
    """Token floods cost bounded argon2 time, no loop lag, and no harm to valid tokens."""
    # For 4 s, 60 unknown ids and 60 wrong secrets a second from one address (plus a burst of
    # one repeated wrong token): at most one argon2 run per request and none past the
    # per-address limit (429 instead); the gateway's event-loop lag stays under 50 ms (p99);
    # valid tokens stay 200 and their median latency barely moves.
    introspector = await spawn("introspector", flood_introspector_env(database_url, redis_url))
    stack = await start_stack(
        KEYGATE_INTROSPECTOR_URL=introspector.url,
        KEYGATE_INTROSPECTOR_TIMEOUT_MS="2000",  # keygate's default
        KEYGATE_RATE_LIMIT_PER_MINUTE="1000000",
    )
    ki = stack.introspector
    alice = await ki.user("alice@example.com")
    valid = [await stack.token_for(alice, name=f"valid {i}") for i in range(2)]
    # Victims without a fast verifier (as from before verifiers): their wrong secrets need
    # argon2, which is what the gates cap. A token with a verifier costs no argon2 at all (see
    # test_a_cold_owner_passes_while_its_public_id_is_hammered).
    victims = [await ki.legacy_token(alice, f"victim {i}") for i in range(6)]
    for token in valid:
        assert (await stack.gateway.get("/x", headers=bearer(token))).status == 200
    base = str(stack.gateway.make_url("")).rstrip("/")

    # 50 concurrent copies of one wrong token cost one argon2 run.
    before = await argon2_runs(introspector.url)
    repeated = tamper(victims[0])
    burst = await send_all(base, [("burst", ("/x", bearer(repeated)))] * 50, concurrency=50)
    assert Counter(o.status for o in burst) == {401: 50}
    assert await argon2_runs(introspector.url) - before == 1

    attack = await flood(base, introspector.url, valid, victims)
    assert Counter(o.status for o in attack.of("unknown")) == {401: FLOOD}
    wrong_statuses = Counter(o.status for o in attack.of("wrong"))
    # 503: the gateway stopped waiting for a verification queued behind the attacker's own
    # (the introspector still ran it, so it is counted below).
    assert set(wrong_statuses) <= {401, 429, 503} and sum(wrong_statuses.values()) == FLOOD
    assert {o.reason for o in attack.of("wrong") if o.status == 429} == {"too_many_attempts"}
    # Unknown ids never reach argon2; wrong secrets do, once each, until the address has used
    # its allowance: from then on the answer is 429 without argon2.
    assert attack.argon2 <= ADDRESS_LIMIT
    assert wrong_statuses[429] >= FLOOD - ADDRESS_LIMIT

    # The owners of real tokens: all 200, latency barely moved.
    attack_start, attack_end = attack.attack_window()
    during = [o for o in attack.of("valid") if attack_start <= o.started < attack_end]
    assert len(during) >= 100 and {o.status for o in during} == {200}
    assert {o.status for o in attack.baseline} == {200}
    figures.update(flood_figures(attack, during, wrong_statuses))
    base_p50 = percentile([o.elapsed for o in attack.baseline], 50)
    flood_p50 = percentile([o.elapsed for o in during], 50)
    assert percentile(attack.probe.between(attack_start, attack_end), 99) < LAG_BOUND
    assert flood_p50 <= max(2 * base_p50, base_p50 + 0.010)


#: How far short of a limit a burst of concurrent attempts may stop (see the test below).
SLACK = 3


async def test_concurrent_wrong_secrets_and_passwords_stop_at_the_limit(
    start_introspector: StartIntrospector, figures: Figures
) -> None:
    """Wrong secrets and wrong passwords sent all at once stop at the per-address/account limit."""
    # 100 wrong secrets sent all at once from one address run argon2 exactly 30 times (the
    # per-address limit) and get 429 for the rest; 40 wrong passwords for one account at once
    # run it 10 times (the per-account limit). Counting only finished failures would let every
    # concurrent attempt through the check.
    ki = await start_introspector()
    alice = await ki.user("alice@example.com")
    victims = [await ki.legacy_token(alice, f"victim {i}") for i in range(10)]
    before = sample(await ki.metrics(), ARGON2)
    answers = await asyncio.gather(
        *(ki.introspect(tamper(victims[i % 10]), "198.51.100.7") for i in range(100))
    )
    argon2 = sample(await ki.metrics(), ARGON2) - before
    statuses = Counter(a.status for a in answers)
    # Never more verifications than the limit, one per verified request, 429 for the rest.
    # Checks still in flight count against the limit, so a burst may stop a little short of
    # it (which attempt's check sees which reservations depends on scheduling).
    assert set(statuses) == {200, 429}, statuses
    assert argon2 == statuses[200]
    assert ADDRESS_LIMIT - SLACK <= statuses[200] <= ADDRESS_LIMIT, statuses

    logins = await asyncio.gather(
        *(
            ki.client.post(
                "/sessions",
                json={"email": "alice@example.com", "password": f"guess {i}"},
                headers={**ki.headers(), "X-Keygate-Client-Address": "198.51.100.8"},
            )
            for i in range(40)
        )
    )
    login_statuses = Counter(r.status for r in logins)
    assert set(login_statuses) == {401, 429}, login_statuses
    assert 10 - SLACK <= login_statuses[401] <= 10, login_statuses
    figures.update(
        secrets_sent=100,
        argon2_runs=int(argon2),
        passwords_sent=40,
        password_checks=login_statuses[401],
    )


def cold(ki: Introspector, token: str) -> Awaitable[int]:
    """Drop ``token``'s Redis cache entry, as its TTL would."""
    redis: aioredis.Redis = ki.client.app[REDIS]
    return redis.delete(f"kg:tok:{{{parse_token(token).public_id}}}")


async def test_a_cold_owner_passes_while_its_public_id_is_hammered(
    start_introspector: StartIntrospector,
) -> None:
    """Wrong secrets for a public id, from many addresses, never refuse its cold owner."""
    # Before: 10 counted failures locked the token id for a minute, the right secret included,
    # whenever its cache entry had lapsed. Now the fast verifier answers before any counter:
    # for a new token, and for an old one once a successful argon2 verify has back-filled it.
    ki = await start_introspector()
    alice = await ki.user("alice@example.com")
    new = (await ki.create_ok(alice, name="new"))["token"]
    old = await ki.legacy_token(alice, "from before verifiers")
    assert (await ki.introspect_json(old, "198.51.100.1"))["active"]  # back-fills its verifier
    before = sample(await ki.metrics(), ARGON2)
    for victim in (new, old):
        await cold(ki, victim)
        answers = [await ki.introspect(tamper(victim), f"203.0.113.{i + 1}") for i in range(40)]
        assert Counter(a.status for a in answers) == {200: 40}
        assert not any([(await a.json())["active"] for a in answers])
        await cold(ki, victim)
        assert (await ki.introspect_json(victim, "198.51.100.2"))["active"]
    # With a verifier, neither the wrong secrets nor the right one ran argon2.
    assert sample(await ki.metrics(), ARGON2) - before == 0


async def test_failures_behind_a_shared_address_refuse_nobody_elses_secret(
    start_introspector: StartIntrospector,
) -> None:
    """30 wrong secrets from an ingress address; cold tokens and logins behind it still pass."""
    # Everyone behind one ingress or NAT shares its address. Before, 30 failures a minute from
    # it returned 429 to every cold token and every sign-in behind it.
    shared = "10.244.0.7"
    ki = await start_introspector()
    mallory = await ki.user("mallory@example.com")
    alice = await ki.user("alice@example.com")
    await ki.db.execute(
        "UPDATE users SET password_hash = $1 WHERE id = $2", ki.hasher.hash(PASSWORD), alice.id
    )
    decoys = [await ki.legacy_token(mallory, f"decoy {i}") for i in range(3)]
    wrong = [await ki.introspect(tamper(decoys[i % 3]), shared) for i in range(40)]
    assert Counter(a.status for a in wrong) == {200: ADDRESS_LIMIT, 429: 40 - ADDRESS_LIMIT}

    token = (await ki.create_ok(alice))["token"]
    await cold(ki, token)
    assert (await ki.introspect_json(token, shared))["active"]
    response = await ki.client.post(
        "/sessions",
        json={"email": "alice@example.com", "password": PASSWORD},
        headers={**ki.headers(), "X-Keygate-Client-Address": shared},
    )
    assert response.status == 201, await response.text()
