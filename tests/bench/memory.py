"""Gateway memory with many distinct cached tokens, and whether it stays bounded.

A gateway of its own (one process, default L1 size, TTL raised so that no entry goes stale
while the cache fills) gets every token once through wrk. Its resident set is read from
``/proc`` before, after the first ``fill`` tokens and after each of two further batches — past
the cache's size, where the LRU must evict instead of growing.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from dataclasses import dataclass, field

from tests.bench.dataset import BenchToken, prime_cache
from tests.bench.load import Wrk
from tests.bench.stack import Stack
from tests.bench.throughput import write_token_file

MB = 1_000_000


@dataclass
class MemoryResult:
    """RSS (MB, 10^6 bytes) and L1 entries at each step, and how fast the cache filled."""

    steps: list[dict[str, float | int]] = field(default_factory=list)

    def rss_at(self, tokens: int) -> float:
        """RSS after ``tokens`` distinct tokens."""
        return float(next(s["rss_mb"] for s in self.steps if s["tokens"] == tokens))

    def as_dict(self) -> dict[str, object]:
        """For the JSON report."""
        return {"steps": self.steps}


def gauge(base_url: str, sample: str) -> float:
    """One sample of the gateway's ``/_keygate/metrics`` (one worker's, when there are
    several), e.g. ``keygate_gateway_l1_cache_entries``; -1 when absent."""
    with urllib.request.urlopen(base_url + "/_keygate/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    found = re.search("^" + re.escape(sample) + r" (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


MISSES = 'keygate_gateway_l1_cache_total{result="miss"}'
ENTRIES = "keygate_gateway_l1_cache_entries"


async def fill(
    stack: Stack, wrk: Wrk, tokens: list[BenchToken], first: int, connections: int
) -> MemoryResult:
    """RSS after 1, ``first`` and then two more equal batches of distinct tokens."""
    assert stack.owner is not None
    redis = stack.redis()
    try:
        await prime_cache(redis, stack.internal_secret, tokens, stack.owner)
    finally:
        await redis.aclose()
    # One process: RSS is per process, and every worker would hold its own copy of the cache.
    gateway = stack.start_gateway(
        "keygate-memory", KEYGATE_L1_CACHE_TTL_SECONDS="300", KEYGATE_GATEWAY_WORKERS="1"
    )
    url = gateway.url + "/bench"
    result = MemoryResult()
    await asyncio.to_thread(wrk.run, url, connections=1, seconds=1, token=tokens[0].plaintext)
    result.steps.append(
        {"tokens": 1, "rss_mb": round(gateway.rss_bytes() / MB, 1), "l1_entries": 1, "rps": 0}
    )
    extra = (len(tokens) - first) // 2
    for start, end in ((1, first), (first, first + extra), (first + extra, len(tokens))):
        batch = write_token_file(
            stack.work_dir / f"memory-{end}.txt", [t.plaintext for t in tokens[start:end]]
        )
        # wrk cycles through the file; every token's first request is an L1 miss, so the miss
        # counter says when each has been seen once. Repeats after that are hits and harmless.
        run = wrk.start(url, connections=connections, seconds=600, token_file=batch)
        started = time.monotonic()
        while await asyncio.to_thread(gauge, gateway.url, MISSES) < end:
            if run.poll() is not None or time.monotonic() - started > 300:
                raise RuntimeError(f"filling the L1 cache stalled:\n{gateway.tail()}")
            await asyncio.sleep(0.5)
        load = Wrk.interrupt(run)
        if load.status_errors or load.errors:
            raise RuntimeError(f"filling the L1 cache: {load.status_errors} refusals")
        await asyncio.sleep(0.5)
        result.steps.append(
            {
                "tokens": end,
                "rss_mb": round(gateway.rss_bytes() / MB, 1),
                "l1_entries": int(await asyncio.to_thread(gauge, gateway.url, ENTRIES)),
                "rps": round((end - start) / (time.monotonic() - started), 1),
                # Each lost revocation channel empties the L1 cache (by design), so fewer
                # entries than tokens at the end of a step means this happened under load.
                "revocation_channel_lost": gateway.log.read_text(errors="replace").count(
                    "revocation channel lost"
                ),
            }
        )
    stack.processes.stop(gateway)
    return result
