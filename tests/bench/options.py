"""The benchmark's command line (``python -m tests.bench --help``; ``make bench BENCH_FLAGS=…``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def parser() -> argparse.ArgumentParser:
    """Every option, with the defaults of a full run."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description="keygate's benchmark (docs/performance.md)."
    )
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
    add("--sizing-tokens", type=int, default=8_000, help="distinct tokens in the sizing phases")
    add(
        "--only-sizing",
        action="store_true",
        help="only what docs/operations/scaling.md needs: the sizing phases and the argon2 path",
    )
    return parser


def quick(args: argparse.Namespace) -> None:
    """Small sizes and short runs: a smoke test of the whole chain, not figures to quote."""
    args.seconds, args.warmup, args.rounds, args.latency_seconds = 3, 1, 1, 2
    args.cold_tokens, args.miss_tokens, args.unknown_ids = 30, 20, 50
    args.big_table, args.memory_tokens, args.memory_extra = 50_000, 5_000, 2_000
    args.revocations, args.sizing_tokens = 10, 2_000
