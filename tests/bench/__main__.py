"""``python -m tests.bench``: the whole benchmark in one run (``make bench``).

Stands up Postgres, Redis, the upstream, keygate and nginx on 127.0.0.1, measures, prints the
markdown tables with every ratio and writes the same as JSON (and markdown) next to it.
See docs/performance.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.bench import dataset
from tests.bench.coldpath import CacheMiss, ColdPath, Introspect, cache_miss, cold_path
from tests.bench.load import LoadResult, Wrk
from tests.bench.memory import MemoryResult, fill
from tests.bench.profile import Profile, record
from tests.bench.report import (
    Target,
    load_average,
    load_table,
    machine,
    rows_table,
    targets_table,
)
from tests.bench.revocation import Propagation, propagation
from tests.bench.stack import Stack, make_work_dir, start_services, start_stack
from tests.bench.throughput import (
    FloodResult,
    LoadPlan,
    contenders,
    write_token_file,
    wrong_secret_flood,
)
from tests.harness.nginx import nginx_binary

ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    add = parser.add_argument
    add("--connections", type=int, default=64, help="wrk connections at full load")
    add("--seconds", type=float, default=8, help="length of each measured wrk run")
    add("--warmup", type=float, default=2, help="unmeasured wrk run before each measured one")
    add("--rounds", type=int, default=2, help="rounds through all contenders; best one counts")
    add("--latency-seconds", type=float, default=4, help="length of each concurrency-1 run")
    add(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="gateway worker processes, and nginx worker processes (default: one per core)",
    )
    add("--cpus", default=None, help="pin wrk to these CPUs with taskset (e.g. 1)")
    add("--cold-tokens", type=int, default=150, help="real tokens for the argon2 path")
    add("--cold-concurrency", type=int, default=8)
    add("--miss-tokens", type=int, default=60, help="real tokens timed on a cache miss")
    add("--unknown-ids", type=int, default=300, help="unknown ids timed on a cache miss")
    add("--small-table", type=int, default=1_000)
    add("--big-table", type=int, default=1_000_000)
    add("--memory-tokens", type=int, default=100_000)
    add("--memory-extra", type=int, default=50_000)
    add("--revocations", type=int, default=50)
    add("--flood-connections", type=int, default=16)
    add("--json", type=Path, default=ROOT / "test-artifacts" / "bench" / "results.json")
    add("--no-profile", action="store_true", help="skip the py-spy profiles of the gateways")
    add("--keep", action="store_true", help="keep the work folder (logs, data)")
    add("--quick", action="store_true", help="a short smoke run with small sizes")
    return parser


@dataclass
class Results:
    """Everything one run measured."""

    full_load: dict[str, LoadResult]
    single: dict[str, LoadResult]
    flood: FloodResult
    cold: ColdPath
    miss_small: CacheMiss
    miss_big: CacheMiss
    revocation: Propagation
    memory: MemoryResult
    profiles: dict[str, Profile]


def _quick(args: argparse.Namespace) -> None:
    args.seconds, args.warmup, args.rounds, args.latency_seconds = 3, 1, 1, 2
    args.cold_tokens, args.miss_tokens, args.unknown_ids = 30, 20, 50
    args.big_table, args.memory_tokens, args.memory_extra = 50_000, 5_000, 2_000
    args.revocations = 10


def _say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def _measure(stack: Stack, args: argparse.Namespace, wrk: Wrk) -> Results:
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
    _say("starting the upstream, keygate and nginx")
    start_services(stack)

    plan = LoadPlan(args.connections, args.seconds, args.warmup, args.rounds)
    _say(f"full load: 5 contenders × {plan.rounds} rounds")
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

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        client = Introspect(stack, session)
        _say("cold path (argon2)")
        cold = await cold_path(client, cold_tokens, args.cold_concurrency)
        _say(f"  {cold.per_second:.1f}/s, loop lag {cold.lag_during}")
        missed = cold_tokens[: args.miss_tokens]

        _say("revocation propagation to two gateways")
        stack.start_gateway("keygate-b")
        revocation = await propagation(stack, ["keygate", "keygate-b"], revocable)
        _say(f"  {revocation.everywhere.as_dict()}")
        stack.processes.stop(stack.services.pop("keygate-b"))

        _say(f"gateway memory with {args.memory_tokens:,} + 2 × {args.memory_extra:,} tokens")
        memory_tokens = dataset.make_tokens(args.memory_tokens + 2 * args.memory_extra)
        memory = await fill(stack, wrk, memory_tokens, args.memory_tokens, args.connections)
        _say(f"  {memory.steps}")

        _say(f"cache misses with {args.small_table:,} tokens")
        redis = stack.redis()
        try:
            await dataset.forget_cached(redis, missed)
        finally:
            await redis.aclose()
        miss_small = await cache_miss(client, missed, args.unknown_ids, args.small_table)
        _say(f"  {miss_small.as_dict()}")

        _say(f"growing the token table to {args.big_table:,} rows")
        conn = await stack.connect()
        try:
            took = await dataset.fill_table(conn, owner, stack.token_hash, args.big_table)
        finally:
            await conn.close()
        _say(f"  … took {took:.0f} s")
        redis = stack.redis()
        try:
            await dataset.forget_cached(redis, missed)
        finally:
            await redis.aclose()
        miss_big = await cache_miss(client, missed, args.unknown_ids, args.big_table)
        _say(f"  {miss_big.as_dict()}")
    return Results(full, single, flood, cold, miss_small, miss_big, revocation, memory, profiles)


def _targets(r: Results, args: argparse.Namespace) -> list[Target]:
    full = r.full_load
    keygate = full["keygate auth + limit + headers"].rps
    added_p50 = (
        r.single["keygate auth + limit + headers"].p50_ms - r.single["upstream (direct)"].p50_ms
    )
    rss_first = r.memory.rss_at(args.memory_tokens)
    rss_last = r.memory.rss_at(args.memory_tokens + 2 * args.memory_extra)
    return [
        Target(
            "keygate ÷ nginx auth_request (req/s)",
            keygate / full["nginx auth_request → keygate"].rps,
            1.5,
            "×",
            False,
        ),
        Target(
            "keygate ÷ nginx plain proxy (req/s)",
            keygate / full["nginx plain proxy"].rps,
            0.5,
            "×",
            False,
        ),
        Target(
            "keygate ÷ keygate passthrough (req/s)",
            keygate / full["keygate passthrough"].rps,
            0.85,
            "×",
            False,
        ),
        Target("added p50 at concurrency 1", added_p50, 0.5, "ms", True),
        Target("revocation on every gateway, p99", r.revocation.everywhere.p99, 100, "ms", True),
        Target(
            f"cache miss p50, {args.big_table:,} ÷ {args.small_table:,} tokens",
            r.miss_big.verified.p50 / r.miss_small.verified.p50,
            1.2,
            "×",
            True,
        ),
        Target(
            f"gateway RSS with {args.memory_tokens:,} cached tokens", rss_first, 200, "MB", True
        ),
        Target(
            # Unbounded, the extra tokens would cost as much again as the first ones (+65 %);
            # the allowance is for allocator fragmentation while the LRU replaces entries.
            f"RSS growth from {args.memory_tokens:,} to "
            f"{args.memory_tokens + 2 * args.memory_extra:,} tokens",
            rss_last / rss_first,
            1.10,
            "×",
            True,
        ),
        Target("valid p99 under wrong-secret flood ÷ idle", r.flood.p99_ratio, 2.0, "×", True),
    ]


def _markdown(r: Results, targets: list[Target], args: argparse.Namespace) -> list[str]:
    lines = load_table(
        f"Full load (wrk: 1 thread, {args.connections} connections, best of {args.rounds} × "
        f"{args.seconds:g} s)",
        r.full_load,
    )
    lines += load_table(
        f"Concurrency 1 (best of {args.rounds} × {args.latency_seconds:g} s)", r.single
    )
    lines += targets_table(targets)
    up = r.single["upstream (direct)"]
    kg = r.single["keygate auth + limit + headers"]
    fl = r.flood
    lines += rows_table(
        "Other measurements",
        ("Measurement", "Value"),
        [
            (
                "added latency at concurrency 1 (p50 / p99)",
                f"{kg.p50_ms - up.p50_ms:.3f} / {kg.p99_ms - up.p99_ms:.3f} ms",
            ),
            (
                "argon2 cold path",
                f"{r.cold.per_second:.1f} verifications/s ({r.cold.concurrency} concurrent)",
            ),
            ("introspector loop lag idle (p50 / p99 / max)", _lag(r.cold.lag_idle)),
            ("introspector loop lag during argon2 (p50 / p99 / max)", _lag(r.cold.lag_during)),
            (
                f"cache miss, real token, {r.miss_small.table_rows:,} rows (p50 / p99)",
                _lat(r.miss_small.verified.as_dict()),
            ),
            (
                f"cache miss, real token, {r.miss_big.table_rows:,} rows (p50 / p99)",
                _lat(r.miss_big.verified.as_dict()),
            ),
            (
                f"cache miss, unknown id, {r.miss_small.table_rows:,} rows (p50 / p99)",
                _lat(r.miss_small.unknown.as_dict()),
            ),
            (
                f"cache miss, unknown id, {r.miss_big.table_rows:,} rows (p50 / p99)",
                _lat(r.miss_big.unknown.as_dict()),
            ),
            (
                f"revocation visible on {r.revocation.gateways} gateways (p50 / p99, "
                f"{len(r.revocation.everywhere.samples)} revokes)",
                _lat(r.revocation.everywhere.as_dict()),
            ),
            *(
                (
                    f"gateway RSS, {s['tokens']:,} cached token{'' if s['tokens'] == 1 else 's'}",
                    f"{s['rss_mb']} MB ({s['l1_entries']:,} in L1"
                    + (
                        f"; L1 emptied {s['revocation_channel_lost']}× by a lost revocation channel"
                        if s.get("revocation_channel_lost")
                        else ""
                    )
                    + ")",
                )
                for s in r.memory.steps
            ),
            ("valid p50 / p99, idle", f"{fl.idle.p50_ms:.2f} / {fl.idle.p99_ms:.2f} ms"),
            (
                f"valid p50 / p99 during a flood of {fl.flood.rps:,.0f} wrong secrets/s",
                f"{fl.during_flood.p50_ms:.2f} / {fl.during_flood.p99_ms:.2f} ms",
            ),
        ],
    )
    for name, found in r.profiles.items():
        lines += rows_table(
            f"Where {name}'s CPU goes under full load (py-spy, {found.samples:,} samples, "
            "self time)",
            ("Package", "Share"),
            [(package, f"{share:.1f} %") for package, share in found.packages],
        )
    return lines


def _lag(data: dict[str, float]) -> str:
    return f"{data['p50_ms']:.2f} / {data['p99_ms']:.2f} / {data['max_ms']:.2f} ms"


def _lat(data: dict[str, Any]) -> str:
    return f"{data['p50_ms']:.2f} / {data['p99_ms']:.2f} ms"


def _document(r: Results, targets: list[Target], info: dict[str, Any]) -> dict[str, Any]:
    return {
        **info,
        "full_load": {k: v.as_dict() for k, v in r.full_load.items()},
        "concurrency_1": {k: v.as_dict() for k, v in r.single.items()},
        "flood": r.flood.as_dict(),
        "cold_path": r.cold.as_dict(),
        "cache_miss": [r.miss_small.as_dict(), r.miss_big.as_dict()],
        "revocation": r.revocation.as_dict(),
        "memory": r.memory.as_dict(),
        "targets": [t.as_dict() for t in targets],
        "profiles": {k: v.as_dict() for k, v in r.profiles.items()},
    }


async def _main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    work_dir = make_work_dir()
    wrk = Wrk(work_dir, args.cpus)
    load_before = load_average()
    _say(f"work folder {work_dir}; load average {load_before}")
    stack = await start_stack(work_dir, workers=args.workers, keepalive=max(64, args.connections))
    try:
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
    targets = _targets(results, args)
    lines = _markdown(results, targets, args)
    lines.append(
        f"Run took {info['seconds']:.0f} s; load average before {load_before}, after "
        f"{load_after}; {host['cores']} cores ({host['cpu']})."
    )
    text = "\n".join(lines)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_document(results, targets, info), indent=2) + "\n")
    args.json.with_suffix(".md").write_text(text + "\n")
    _say(f"wrote {args.json} and {args.json.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when it ran (targets missed are reported, not failures)."""
    args = _parser().parse_args(argv)
    if args.quick:
        _quick(args)
    # SIGTERM (or `timeout`) must still stop every server the run started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
