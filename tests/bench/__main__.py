"""``python -m tests.bench``: the whole benchmark in one run (``make bench``).

Stands up Postgres, Redis, the upstream, keygate and nginx on 127.0.0.1, measures, prints the
markdown tables with every ratio and writes the same as JSON (and markdown) next to it.
See docs/performance.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.bench import dataset, sizing_run
from tests.bench.coldpath import CacheMiss, Introspect, cache_miss
from tests.bench.load import LoadResult, Wrk
from tests.bench.memory import fill
from tests.bench.options import parser, quick
from tests.bench.profile import Profile, record
from tests.bench.report import load_average, machine
from tests.bench.results import Results, document, evaluate_targets, markdown
from tests.bench.revocation import propagation
from tests.bench.round_trips import limiter_round_trips
from tests.bench.sizing import sizing_markdown
from tests.bench.stack import Stack, make_work_dir, start_services, start_stack
from tests.bench.throughput import (
    CONTENDERS,
    FloodResult,
    LoadPlan,
    contenders,
    write_token_file,
    wrong_secret_flood,
)
from tests.harness.nginx import nginx_binary


def _say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def _measure(stack: Stack, args: argparse.Namespace, wrk: Wrk) -> Results:
    """Seed the data, start the services, then take every measurement in turn."""
    tokens = await _seed(stack, args)
    _say("starting the upstream, keygate and nginx")
    start_services(stack)
    full, single, flood = await _through_the_gateways(stack, args, wrk, tokens.main)
    _say(f"limiter round trips at {args.connections} connections")
    trips = await limiter_round_trips(
        stack, wrk, tokens.main.plaintext, connections=args.connections, seconds=args.seconds
    )
    _say(f"  {trips.as_dict()}")
    profiles = await _profiles(stack, args, wrk, tokens.main)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        client = Introspect(stack, session)
        _say("cold path (argon2)")
        cold, argon2 = await sizing_run.measured_cold_path(
            stack, client, tokens.cold, args.cold_concurrency
        )
        _say(f"  {cold.per_second:.1f}/s, loop lag {cold.lag_during}")
        missed = tokens.cold[: args.miss_tokens]

        _say("revocation propagation to two gateways")
        stack.start_gateway("keygate-b")
        revocation = await propagation(stack, ["keygate", "keygate-b"], tokens.revocable)
        _say(f"  {revocation.everywhere.as_dict()}")
        stack.processes.stop(stack.services.pop("keygate-b"))

        _say(f"gateway memory with {args.memory_tokens:,} + 2 × {args.memory_extra:,} tokens")
        memory_tokens = dataset.make_tokens(args.memory_tokens + 2 * args.memory_extra)
        memory = await fill(stack, wrk, memory_tokens, args.memory_tokens, args.connections)
        _say(f"  {memory.steps}")

        miss_small, miss_big = await _cache_misses(stack, args, client, missed)
        _say("sizing: what a request costs each tier")
        sizing = await sizing_run.measure(
            stack, args, wrk, client, (tokens.main, tokens.cold), argon2
        )
    return Results(
        full, single, flood, cold, miss_small, miss_big, revocation, memory, profiles, trips, sizing
    )


async def _sizing_only(stack: Stack, args: argparse.Namespace, wrk: Wrk) -> dict[str, Any]:
    """``--only-sizing``: the argon2 path, the table grown to ``--big-table`` rows, the sizing
    phases; the JSON sections ``cold_path`` and ``sizing``."""
    tokens = await _seed(stack, args)
    start_services(stack)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        client = Introspect(stack, session)
        _say("cold path (argon2)")
        cold, argon2 = await sizing_run.measured_cold_path(
            stack, client, tokens.cold, args.cold_concurrency
        )
        _say(f"growing the token table to {args.big_table:,} rows")
        assert stack.owner is not None
        conn = await stack.connect()
        try:
            await dataset.fill_table(conn, stack.owner, stack.token_hash, args.big_table)
        finally:
            await conn.close()
        _say("sizing: what a request costs each tier")
        sizing = await sizing_run.measure(
            stack, args, wrk, client, (tokens.main, tokens.cold), argon2
        )
    return {"cold_path": cold.as_dict(), "sizing": sizing}


@dataclass
class _Tokens:
    """The run's tokens: the one the load runs use, the ones it revokes, the argon2 ones."""

    main: dataset.BenchToken
    revocable: list[dataset.BenchToken]
    cold: list[dataset.BenchToken]


async def _seed(stack: Stack, args: argparse.Namespace) -> _Tokens:
    """Insert the tokens (the cold ones with real argon2 hashes), the small table's rows, and
    the warm tokens' cache entries."""
    assert stack.owner is not None
    owner = stack.owner
    main_token = dataset.make_token()
    revocable = dataset.make_tokens(args.revocations)
    cold_tokens = dataset.make_tokens(args.cold_tokens)
    _say(f"hashing {len(cold_tokens)} real tokens with argon2id (OWASP parameters)")
    conn = await stack.connect()
    try:
        warm = [main_token, *revocable]
        await dataset.insert_tokens(conn, owner, warm, [stack.token_hash] * len(warm), "warm")
        hashes = await dataset.real_hashes(cold_tokens)
        await dataset.insert_tokens(conn, owner, cold_tokens, hashes, "real")
        await dataset.fill_table(conn, owner, stack.token_hash, args.small_table)
    finally:
        await conn.close()
    redis = stack.redis()
    try:
        await dataset.prime_cache(redis, stack.internal_secret, warm, owner)
    finally:
        await redis.aclose()
    return _Tokens(main_token, revocable, cold_tokens)


async def _through_the_gateways(
    stack: Stack, args: argparse.Namespace, wrk: Wrk, main_token: dataset.BenchToken
) -> tuple[dict[str, LoadResult], dict[str, LoadResult], FloodResult]:
    """wrk against every contender at full load and at concurrency 1, then the wrong-secret
    flood."""
    plan = LoadPlan(args.connections, args.seconds, args.warmup, args.rounds)
    _say(f"full load: {len(CONTENDERS)} contenders × {plan.rounds} rounds")
    full = await contenders(stack, wrk, main_token.plaintext, plan)
    for name, result in full.items():
        _say(f"  {name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms")
    _say("concurrency 1")
    single_plan = LoadPlan(1, args.latency_seconds, 1, args.rounds)
    single = await contenders(stack, wrk, main_token.plaintext, single_plan, by_latency=True)
    for name, result in single.items():
        _say(f"  {name}: p50 {result.p50_ms:.3f} ms, p99 {result.p99_ms:.3f} ms")
    _say("wrong-secret flood")
    flood_file = write_token_file(
        stack.work_dir / "flood.txt", [dataset.wrong_secret(main_token) for _ in range(1000)]
    )
    flood = await wrong_secret_flood(
        stack,
        wrk,
        main_token.plaintext,
        flood_file,
        seconds=args.seconds,
        flood_connections=args.flood_connections,
    )
    _say(f"  p99 idle {flood.idle.p99_ms:.2f} ms, under flood {flood.during_flood.p99_ms:.2f} ms")
    return full, single, flood


async def _profiles(
    stack: Stack, args: argparse.Namespace, wrk: Wrk, main_token: dataset.BenchToken
) -> dict[str, Profile]:
    """py-spy profiles of both keygate gateways under full load (none with --no-profile)."""
    profiles: dict[str, Profile] = {}
    if not args.no_profile:
        _say("profiling the gateways under full load (py-spy)")
        for name in ("keygate", "keygate-passthrough"):
            found = await record(
                stack.services[name],
                wrk,
                main_token.plaintext,
                args.json.parent / f"profile-{name}.txt",
                connections=args.connections,
                seconds=args.seconds,
            )
            if found is not None:
                profiles[name] = found
    return profiles


async def _forget_cached(stack: Stack, missed: list[dataset.BenchToken]) -> None:
    """Drop ``missed`` from the introspector's Redis cache, so each lookup goes to Postgres."""
    redis = stack.redis()
    try:
        await dataset.forget_cached(redis, missed)
    finally:
        await redis.aclose()


async def _cache_misses(
    stack: Stack, args: argparse.Namespace, client: Introspect, missed: list[dataset.BenchToken]
) -> tuple[CacheMiss, CacheMiss]:
    """Cache-miss introspections with the small token table, then with the table grown big."""
    _say(f"cache misses with {args.small_table:,} tokens")
    await _forget_cached(stack, missed)
    miss_small = await cache_miss(client, missed, args.unknown_ids, args.small_table)
    _say(f"  {miss_small.as_dict()}")

    _say(f"growing the token table to {args.big_table:,} rows")
    assert stack.owner is not None
    conn = await stack.connect()
    try:
        took = await dataset.fill_table(conn, stack.owner, stack.token_hash, args.big_table)
    finally:
        await conn.close()
    _say(f"  … took {took:.0f} s")
    await _forget_cached(stack, missed)
    miss_big = await cache_miss(client, missed, args.unknown_ids, args.big_table)
    _say(f"  {miss_big.as_dict()}")
    return miss_small, miss_big


async def _main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    work_dir = make_work_dir()
    wrk = Wrk(work_dir, args.cpus)
    load_before = load_average()
    _say(f"work folder {work_dir}; load average {load_before}")
    stack = await start_stack(work_dir, workers=args.workers, keepalive=max(64, args.connections))
    try:
        if args.only_sizing:
            found = await _sizing_only(stack, args, wrk)
        else:
            results = await _measure(stack, args, wrk)
        host = machine(nginx_binary(), stack.postgres.bindir, stack.redis_server.binary)
        load_after = load_average()
        info: dict[str, Any] = {
            "machine": host,
            "settings": {k: str(v) for k, v in vars(args).items() if k != "json"},
            "load_average": {"before": load_before, "after": load_after},
            "seconds": round(time.monotonic() - started, 1),
        }
    finally:
        stack.stop(keep=args.keep)
    if args.only_sizing:
        report, lines = {**info, **found}, sizing_markdown({**info, **found})
    else:
        targets = evaluate_targets(results, args)
        report = document(results, targets, info)
        lines = [*markdown(results, targets, args), "", *sizing_markdown(report)]
    lines.append(
        f"Run took {info['seconds']:.0f} s; load average before {load_before}, after "
        f"{load_after}; {host['cores']} cores ({host['cpu']})."
    )
    text = "\n".join(lines)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    args.json.with_suffix(".md").write_text(text + "\n")
    _say(f"wrote {args.json} and {args.json.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when it ran (targets missed are reported, not failures)."""
    args = parser().parse_args(argv)
    if args.quick:
        quick(args)
    # SIGTERM (or `timeout`) must still stop every server the run started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
