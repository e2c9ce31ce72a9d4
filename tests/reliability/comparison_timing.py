"""The in-process half of tests/reliability/test_timing.py, run in an interpreter of its own:
``python -m tests.reliability.comparison_timing`` prints the medians and ratios as JSON.

Two groups of wrong secrets for the same (cached) token: *near* ones, equal to the right secret
but for the last character, and *far* ones, differing from the first. A batch of calls of each
group is timed by ``perf_counter_ns``, the two back to back in a random order, pair after pair,
and the median ratio near ÷ far is what the test reads: for an early-exit comparison (a
character loop that stops at the first difference, the positive control), for the gateway's L1
cache and for the introspector's Redis-cache check.

A fresh interpreter because the test measures differences of a few per cent: late in a full
suite run, in a heap of tens of thousands of objects, where each group's strings happen to lie
in memory alone moved the two medians up to 9 % apart; in a small heap they differ by under 1 %.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import time
from collections.abc import Callable

from gateway.token_cache import L1Cache
from introspector.cache import CacheEntry, TokenCache
from introspector.keyed_mac import KeyedMac
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.token_format import ALPHABET, ParsedToken, generate_token

#: Calls per timed batch, and pairs of batches (a near one and a far one) timed.
BATCH = 100
PAIRS = 600


def wrong_secrets(right: str, count: int, rng: random.Random) -> tuple[list[str], list[str]]:
    """``count`` near secrets (all but the last character right) and ``count`` far ones (the
    first character already wrong), each well-formed."""
    near, far = [], []
    for _ in range(count):
        last = rng.choice([c for c in ALPHABET if c != right[-1]])
        near.append(right[:-1] + last)
        first = rng.choice([c for c in ALPHABET if c != right[0]])
        far.append(first + "".join(rng.choice(ALPHABET) for _ in right[1:]))
    return near, far


def paired_medians(
    check: Callable[[str], object], near: list[str], far: list[str], rng: random.Random
) -> tuple[float, float, float]:
    """Median nanoseconds per call of ``check`` over batches of near and of far secrets, and
    the median ratio near ÷ far of a near batch and the far batch timed right next to it.

    Pairs, each in a random order, rather than two groups compared as wholes: on a machine
    busy with other work the speed of a core changes from one millisecond to the next, and
    two batches timed back to back see the same conditions.
    """
    timings: dict[str, list[float]] = {"near": [], "far": []}
    ratios: list[float] = []
    groups = {"near": near, "far": far}
    # As timeit does: no garbage collection in the middle of a batch.
    gc.collect()
    gc.disable()
    try:
        for _ in range(PAIRS):
            pair = ["near", "far"]
            rng.shuffle(pair)
            timed = {}
            for group in pair:
                secrets = groups[group]
                started = time.perf_counter_ns()
                for secret in secrets:
                    check(secret)
                timed[group] = (time.perf_counter_ns() - started) / len(secrets)
                timings[group].append(timed[group])
            ratios.append(timed["near"] / timed["far"])
    finally:
        gc.enable()
    return (
        statistics.median(timings["near"]),
        statistics.median(timings["far"]),
        statistics.median(ratios),
    )


def early_exit_equal(a: str, b: str) -> bool:
    """The comparison a timing attack exploits: it stops at the first difference."""
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


def measure(seed: int) -> dict[str, tuple[float, float, float]]:
    """Near and far medians (ns per call) and the median pair ratio near ÷ far, of the
    control, the L1 check and the cache check."""
    rng = random.Random(seed)
    _, parts = generate_token()
    near, far = wrong_secrets(parts.secret, BATCH, rng)

    control = paired_medians(lambda s: early_exit_equal(s, parts.secret), near, far, rng)

    l1 = L1Cache(10, 60)
    active = IntrospectionResult(active=True, token_id="t", public_id=parts.public_id)
    l1.put(parts, active, l1.epoch)
    l1.listening = True
    # Made alternately, so neither group's objects sit in fresher memory than the other's.
    probes = {
        s: ParsedToken(parts.public_id, s) for pair in zip(near, far, strict=True) for s in pair
    }
    if l1.lookup(parts)[1] is not active or l1.lookup(probes[near[0]])[1] is not None:
        raise RuntimeError("the L1 cache does not answer as the measurement assumes")
    gateway = paired_medians(lambda s: l1.lookup(probes[s])[1], near, far, rng)

    cache = TokenCache(None, KeyedMac(b"k" * 32), 60, 10)  # type: ignore[arg-type]  # no Redis needed
    entry = CacheEntry(state="active", mac=cache.mac(parts.secret), claims={})
    if not cache.matches(entry, parts.secret) or cache.matches(entry, near[0]):
        raise RuntimeError("the cache check does not answer as the measurement assumes")
    introspector = paired_medians(lambda s: cache.matches(entry, s), near, far, rng)
    return {"control": control, "l1": gateway, "cache": introspector}


if __name__ == "__main__":
    print(json.dumps(measure(7)))
