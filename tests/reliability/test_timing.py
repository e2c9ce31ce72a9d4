"""Timing: a wrong secret that shares a long prefix with the right one is rejected no faster
and no slower than one that shares nothing.

Two groups of wrong secrets for the same (cached) token: *near* ones, equal to the right secret
but for the last character, and *far* ones, differing from the first; their timings compared.

- In process, against the comparisons themselves (the gateway's L1 cache and the introspector's
  Redis-cache check), in an interpreter of its own (:mod:`tests.reliability.comparison_timing`).
  The same procedure is first shown to catch an early-exit comparison (a character loop that
  stops at the first difference): a method that cannot see that proves nothing.
- End to end, over HTTP through the gateway to the introspector's cache.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from keygate_core.token_format import (
    CHECKSUM_LENGTH,
    PREFIX,
    PUBLIC_ID_LENGTH,
    SECRET_LENGTH,
    checksum,
)
from tests.harness.figures import Figures
from tests.harness.stack import StartStack
from tests.reliability.comparison_timing import wrong_secrets
from tests.reliability.measure import NO_ANSWER, sample, send

#: In process: how far from 1 the median ratio near ÷ far must be for the positive control,
#: and how close to 1 it must stay for the real comparisons (an early exit is over 2).
DETECTED = 0.10
INDISTINGUISHABLE = 0.05


def test_secret_comparisons_take_as_long_for_near_and_far_misses(figures: Figures) -> None:
    """Near and far misses take as long in the L1 and the cache check (not in an early exit)."""
    run = subprocess.run(
        [sys.executable, "-m", "tests.reliability.comparison_timing"],
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
        cwd=Path(__file__).parents[2],  # where `tests` is a package
    )
    measured = json.loads(run.stdout)
    for name, (near_ns, far_ns, ratio) in measured.items():
        figures.update(
            {f"{name}_near_ns": near_ns, f"{name}_far_ns": far_ns, f"{name}_ratio": ratio}
        )
    assert abs(measured["control"][2] - 1) > DETECTED, measured["control"]
    assert abs(measured["l1"][2] - 1) < INDISTINGUISHABLE, measured["l1"]
    assert abs(measured["cache"][2] - 1) < INDISTINGUISHABLE, measured["cache"]


#: The gateway's counter of L1 lookups, whose ``wrong_secret`` result says who refused.
L1_LOOKUPS = "keygate_gateway_l1_cache_total"
#: Over HTTP: requests per group, and the largest median pair difference tolerated.
HTTP_SAMPLES = 300
HTTP_TOLERANCE_S = 0.000_050
HTTP_TOLERANCE = 0.05


@pytest.mark.parametrize("refused_by", ["gateway", "introspector"])
async def test_near_and_far_wrong_secrets_get_their_401_equally_fast(
    start_stack: StartStack, figures: Figures, refused_by: str
) -> None:
    """Near and far wrong secrets for a cached token get their 401 equally fast over HTTP."""
    # 300 pairs, each one near and one far wrong secret sent one after the other (which goes
    # first drawn at random) through the gateway: all 401, and the median of the pairs'
    # differences within 5 % (or 50 µs) of the far median. Pairing compares each near request
    # with a far one sent under the same load: the medians of two whole groups of shuffled
    # requests came out 9 % apart once, in a full run on a busy machine. Once refused by the
    # gateway's L1 cache (it holds the id), once with that cache off, by the introspector's
    # Redis cache.
    l1_size = "100" if refused_by == "gateway" else "0"
    stack = await start_stack(
        KEYGATE_RATE_LIMIT_PER_MINUTE="1000000", KEYGATE_L1_CACHE_SIZE=l1_size
    )
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await stack.gateway.get("/x", headers=headers)).status == 200  # cached everywhere
    rng = random.Random(11)
    body = token[:-CHECKSUM_LENGTH]
    public_part, secret = body[: len(PREFIX) + PUBLIC_ID_LENGTH + 1], body[-SECRET_LENGTH:]
    near, far = wrong_secrets(secret, HTTP_SAMPLES, rng)

    def full(candidate: str) -> str:
        return public_part + candidate + checksum(public_part + candidate)

    base = str(stack.gateway.make_url("")).rstrip("/")
    session = stack.gateway.session

    async def refusal_time(candidate: str) -> float:
        request = ("/x", {"Authorization": f"Bearer {full(candidate)}"})
        outcome = await send(session, base, "timed", request, 5)
        assert outcome.status not in (NO_ANSWER, 200) and outcome.status == 401
        return outcome.elapsed

    for _ in range(20):  # warm the connection and the code paths
        await refusal_time(far[0])
    timings: dict[str, list[float]] = {"near": [], "far": []}
    differences = []
    for near_secret, far_secret in zip(near, far, strict=True):
        pair = [("near", near_secret), ("far", far_secret)]
        rng.shuffle(pair)
        for group, candidate in pair:
            timings[group].append(await refusal_time(candidate))
        differences.append(timings["near"][-1] - timings["far"][-1])
    far_median = statistics.median(timings["far"])
    difference = statistics.median(differences)
    metrics = await (await session.get(base + "/_keygate/metrics")).text()
    refused_locally = sample(metrics, L1_LOOKUPS, result="wrong_secret")
    assert refused_locally == (2 * HTTP_SAMPLES + 20 if refused_by == "gateway" else 0)
    figures.update(
        refused_by=refused_by,
        samples=2 * HTTP_SAMPLES,
        near_median_us=statistics.median(timings["near"]) * 1e6,
        far_median_us=far_median * 1e6,
        pair_difference_us=difference * 1e6,
    )
    assert abs(difference) <= max(HTTP_TOLERANCE * far_median, HTTP_TOLERANCE_S)
    assert stack.upstream.requests[1:] == []
