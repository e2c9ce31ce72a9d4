"""The benchmark's sizing phases: what a request costs with a warm L1, an L1 miss, a Redis miss.

Counted with :mod:`tests.bench.costs`; the JSON's ``sizing`` section feeds
``python -m tests.bench.sizing`` (docs/operations/scaling.md). Two gateways of their own run the
gateway phases with the *default* rate limit, so the limiter leases as it would for real tokens:

* ``l1_hit``: many distinct tokens, all in the gateway's L1 (its TTL raised so none expires);
* ``l1_miss``: the same tokens through a gateway without an L1 (``KEYGATE_L1_CACHE_SIZE=0``),
  so every request asks the introspector, which answers from its Redis cache;
* ``redis_hit``: the same tokens asked of the introspector directly, answered from its cache;
* ``redis_miss``: real tokens asked of the introspector after their cache entries were deleted,
  so each goes to Postgres (their fast verifiers are written: no argon2);
* ``argon2``: the cold path (:func:`tests.bench.coldpath.cold_path`), argon2 on every token;
* ``one_token``: the bench's main contender with its one hot token, where leases batch best.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from pathlib import Path
from typing import Any

from keygate_core.redis_keys import token_key
from tests.bench import dataset
from tests.bench.coldpath import ColdPath, Introspect, cold_path
from tests.bench.costs import (
    PG_STATS_SECONDS,
    Phase,
    key_memory,
    requests_of,
    settled_counters,
)
from tests.bench.load import Wrk
from tests.bench.memory import gauge
from tests.bench.stack import Stack
from tests.bench.throughput import PATH, write_token_file

#: The gateway's default per-token limit (KEYGATE_RATE_LIMIT_PER_MINUTE).
DEFAULT_LIMIT = "600"
_HITS = 'keygate_gateway_l1_cache_total{result="hit"}'
_MISSES = 'keygate_gateway_l1_cache_total{result="miss"}'


async def measured_cold_path(
    stack: Stack, client: Introspect, tokens: list[dataset.BenchToken], concurrency: int
) -> tuple[ColdPath, Phase]:
    """The cold path, with the introspector's CPU and the other counters around it."""
    before = await settled_counters(stack, ["introspector"])
    cold = await cold_path(client, tokens, concurrency)
    after = await settled_counters(stack, ["introspector"])
    return cold, Phase(cold.verifications, before, after)


def _channel_lost(stack: Stack, gateway: str) -> int:
    """How often the gateway has logged losing its revocation channel; each loss empties the
    L1 (by design), which is why the model reads the L1 hits a phase really had."""
    return stack.services[gateway].log.read_text(errors="replace").count("revocation channel lost")


async def _traffic(
    stack: Stack, wrk: Wrk, gateway: str, args: argparse.Namespace, **load: Any
) -> tuple[Phase, dict[str, float]]:
    """One wrk run through ``gateway``, counted; also the limiter buckets' size, read
    half-way through (they expire about a second after their last request)."""
    services = [gateway, "introspector"]
    url = stack.services[gateway].url
    hits, misses = gauge(url, _HITS), gauge(url, _MISSES)
    lost = _channel_lost(stack, gateway)
    before = await settled_counters(stack, services)
    run = wrk.start(url + PATH, connections=args.connections, seconds=args.seconds, **load)
    await asyncio.sleep(args.seconds / 2)
    buckets = await key_memory(stack, "kg:rl:*")
    result = await asyncio.to_thread(Wrk.result, run)
    after = await settled_counters(stack, services)
    extra = {
        "rps": round(result.rps),
        "l1_hits": gauge(url, _HITS) - hits,
        "l1_misses": gauge(url, _MISSES) - misses,
        "revocation_channel_lost": _channel_lost(stack, gateway) - lost,
    }
    # Our SCAN and MEMORY USAGE calls are not counted; their round trips are, so take them off.
    ours = {"round trips": math.ceil(buckets["keys"] / 1000) + 2}
    return Phase(requests_of(result), before, after, extra, ours), buckets


async def _warm_l1(stack: Stack, wrk: Wrk, args: argparse.Namespace, token_file: Path) -> None:
    """Traffic through ``sizing-l1`` until each worker's L1 holds the tokens: every worker
    has its own, so one pass is not enough; done when a run has under 1 % L1 misses. Every
    wrk run starts at the top of the token file, so each run lasts as long as the measured
    one: it then reaches as far into the file."""
    url = stack.services["sizing-l1"].url
    for _ in range(8):
        misses = gauge(url, _MISSES)
        run = await asyncio.to_thread(
            wrk.run,
            url + PATH,
            connections=args.connections,
            seconds=args.seconds,
            token_file=token_file,
        )
        if gauge(url, _MISSES) - misses < run.requests / 100:
            return
    raise RuntimeError("the L1 never warmed up: is KEYGATE_L1_CACHE_SIZE below the tokens?")


async def _gateway_phases(
    stack: Stack, args: argparse.Namespace, wrk: Wrk, main: dataset.BenchToken
) -> tuple[dict[str, Phase], dict[str, dict[str, float]], list[dataset.BenchToken]]:
    """The three gateway phases, the bytes of a bucket and of a usage counter, and the tokens
    (their entries are still in the introspector's cache)."""
    assert stack.owner is not None
    tokens = dataset.make_tokens(args.sizing_tokens)
    redis = stack.redis()
    try:
        await dataset.prime_cache(redis, stack.internal_secret, tokens, stack.owner)
    finally:
        await redis.aclose()
    token_file = write_token_file(stack.work_dir / "sizing.txt", [t.plaintext for t in tokens])
    stack.start_gateway(
        "sizing-l1", KEYGATE_RATE_LIMIT_PER_MINUTE=DEFAULT_LIMIT, KEYGATE_L1_CACHE_TTL_SECONDS="300"
    )
    stack.start_gateway(
        "sizing-no-l1", KEYGATE_RATE_LIMIT_PER_MINUTE=DEFAULT_LIMIT, KEYGATE_L1_CACHE_SIZE="0"
    )
    try:
        await _warm_l1(stack, wrk, args, token_file)
        phases: dict[str, Phase] = {}
        phases["l1_hit"], buckets = await _traffic(
            stack, wrk, "sizing-l1", args, token_file=token_file
        )
        phases["l1_miss"], _ = await _traffic(
            stack, wrk, "sizing-no-l1", args, token_file=token_file
        )
        phases["one_token"], _ = await _traffic(stack, wrk, "keygate", args, token=main.plaintext)
    finally:
        for name in ("sizing-l1", "sizing-no-l1"):
            stack.processes.stop(stack.services.pop(name))
    usage = await key_memory(stack, "kg:use:*")
    return phases, {"bucket": buckets, "usage_counter": usage}, tokens


async def _ask_all(client: Introspect, queue: list[dataset.BenchToken]) -> None:
    """Introspect tokens from ``queue`` until it is empty; each must be active."""
    while queue:
        active, _ = await client.ask(queue.pop().plaintext)
        if not active:
            raise RuntimeError("a real token was refused on a cache miss")


async def _redis_hits(
    stack: Stack, client: Introspect, tokens: list[dataset.BenchToken], concurrency: int
) -> Phase:
    """Introspections of ``tokens``, whose entries are in the introspector's cache."""
    before = await settled_counters(stack, ["introspector"])
    queue = list(tokens)
    await asyncio.gather(*(_ask_all(client, queue) for _ in range(concurrency)))
    after = await settled_counters(stack, ["introspector"])
    return Phase(len(tokens), before, after)


async def _redis_misses(
    stack: Stack, client: Introspect, tokens: list[dataset.BenchToken], concurrency: int
) -> Phase:
    """Introspections of ``tokens`` with their cache entries deleted first, at least 300;
    the Postgres count waits for the statistics (:data:`PG_STATS_SECONDS` before and after)."""
    passes = math.ceil(300 / len(tokens))
    before = await settled_counters(stack, ["introspector"], PG_STATS_SECONDS)
    for _ in range(passes):
        redis = stack.redis()
        try:
            await dataset.forget_cached(redis, tokens)
        finally:
            await redis.aclose()
        queue = list(tokens)
        await asyncio.gather(*(_ask_all(client, queue) for _ in range(concurrency)))
    after = await settled_counters(stack, ["introspector"], PG_STATS_SECONDS)
    ours = {"del": passes, "round trips": passes}
    return Phase(passes * len(tokens), before, after, ours=ours, pg_settled=True)


async def measure(
    stack: Stack,
    args: argparse.Namespace,
    wrk: Wrk,
    client: Introspect,
    tokens: tuple[dataset.BenchToken, list[dataset.BenchToken]],
    argon2: Phase,
) -> dict[str, Any]:
    """The ``sizing`` section of the JSON report. ``tokens`` are the main token and the real
    ones the cold path (``argon2``) has already verified once."""
    main, real = tokens
    phases, memory, warm = await _gateway_phases(stack, args, wrk, main)
    phases["redis_hit"] = await _redis_hits(stack, client, warm, args.cold_concurrency)
    phases["redis_miss"] = await _redis_misses(stack, client, real, args.cold_concurrency)
    phases["argon2"] = argon2
    memory["cached_token"] = await key_memory(
        stack, "", keys=[token_key(t.public_id) for t in real[:50]]
    )
    conn = await stack.connect()
    try:
        rows = await conn.fetchval("SELECT count(*) FROM api_token")
    finally:
        await conn.close()
    return {
        "workers": stack.workers,
        "tokens": args.sizing_tokens,
        "connections": args.connections,
        "seconds": args.seconds,
        "table_rows": rows,
        "phases": {name: phase.as_dict() for name, phase in phases.items()},
        "memory_bytes": memory,
    }
