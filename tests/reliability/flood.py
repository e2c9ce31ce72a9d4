"""The flood the cost-attack tests send: attack streams beside real owners' traffic, from
another process, with the gateway's event-loop lag probed throughout."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import aiohttp

from keygate_core.token_format import generate_token, parse_token
from tests.reliability.loadgen import load_from_another_process
from tests.reliability.loop_lag import LagProbe, frozen_heap, probing
from tests.reliability.measure import Outcome, percentile, sample

ATTACK_RATE = 60
FLOOD_SECONDS = 4
FLOOD = ATTACK_RATE * FLOOD_SECONDS
#: Real token owners meanwhile send VALID_RATE requests per second.
VALID_RATE = 50
ARGON2 = "keygate_argon2_verify_duration_seconds_count"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tamper(token: str) -> str:
    """The same token id with another well-formed secret."""
    return generate_token(parse_token(token).public_id)[0]


async def argon2_runs(introspector_url: str) -> float:
    """How many argon2 verifications the introspector has run so far."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(introspector_url + "/metrics") as response,
    ):
        return sample(await response.text(), ARGON2)


def valid_stream(valid: list[str], seconds: float) -> dict[str, object]:
    """The real token owners' requests, VALID_RATE a second for ``seconds``."""
    count = int(VALID_RATE * seconds)
    requests = [["/x", bearer(valid[i % 2])] for i in range(count)]
    return {"kind": "valid", "rate": VALID_RATE, "requests": requests}


@dataclass
class Flood:
    """What the flood phase recorded, with the gateway's loop lag probed throughout."""

    #: Valid traffic alone, before the attack.
    baseline: list[Outcome]
    #: The attack streams ("unknown", "wrong") and the valid traffic beside them.
    outcomes: list[Outcome]
    probe: LagProbe
    #: argon2 verifications the attack caused.
    argon2: float

    def of(self, kind: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == kind]

    def attack_window(self) -> tuple[float, float]:
        """From the first attack request's start to the last one's end."""
        attack = [o for o in self.outcomes if o.kind != "valid"]
        return min(o.started for o in attack), max(o.finished for o in attack)


async def flood(base: str, introspector_url: str, valid: list[str], victims: list[str]) -> Flood:
    """2 s of valid traffic alone, then FLOOD_SECONDS of both attack streams beside it."""
    with frozen_heap():
        async with probing() as probe:
            baseline = await load_from_another_process(
                {"base_url": base, "streams": [valid_stream(valid, 2)]}
            )
            before = await argon2_runs(introspector_url)
            unknown = [["/x", bearer(generate_token()[0])] for _ in range(FLOOD)]
            wrong = [["/x", bearer(tamper(victims[i % len(victims)]))] for i in range(FLOOD)]
            outcomes = await load_from_another_process(
                {
                    "base_url": base,
                    "streams": [
                        {"kind": "unknown", "rate": ATTACK_RATE, "requests": unknown},
                        {"kind": "wrong", "rate": ATTACK_RATE, "requests": wrong},
                        valid_stream(valid, FLOOD_SECONDS),
                    ],
                }
            )
    argon2 = await argon2_runs(introspector_url) - before
    return Flood(baseline, outcomes, probe, argon2)


def flood_figures(
    flood: Flood, during: list[Outcome], wrong_statuses: Counter[int]
) -> dict[str, float]:
    """The numbers docs/reliability.md reports for the flood."""
    attack_start, attack_end = flood.attack_window()
    baseline_start = min(o.started for o in flood.baseline)
    baseline_end = max(o.finished for o in flood.baseline)
    lag = flood.probe.between(attack_start, attack_end)
    base_lag = flood.probe.between(baseline_start, baseline_end)
    baseline = [o.elapsed for o in flood.baseline]
    flooded = [o.elapsed for o in during]
    return {
        "unknown": FLOOD,
        "wrong": FLOOD,
        "wrong_429": wrong_statuses[429],
        "argon2_runs": int(flood.argon2),
        "lag_p50_ms": percentile(lag, 50) * 1000,
        "lag_p99_ms": percentile(lag, 99) * 1000,
        "lag_max_ms": max(lag) * 1000,
        "baseline_lag_p99_ms": percentile(base_lag, 99) * 1000,
        "valid_p50_ms": percentile(baseline, 50) * 1000,
        "valid_p50_flood_ms": percentile(flooded, 50) * 1000,
        "valid_p95_ms": percentile(baseline, 95) * 1000,
        "valid_p95_flood_ms": percentile(flooded, 95) * 1000,
        "attack_s": attack_end - attack_start,
    }
