"""The sizing model's arithmetic (tests/bench/sizing_model.py) on a small hand-made report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.bench import sizing
from tests.bench.sizing_model import Assumptions, Costs, hit_ratio, size, usage_commands


def _report() -> dict[str, Any]:
    """Round figures: 6.1 and 5.9 Redis commands per request in the gateway phases, 10 and 15 µs
    of Redis CPU, so a Redis core runs 12,000 commands in 0.025 s: 480,000 a second."""
    lease = {"evalsha": 1, "time": 1, "hmget": 1, "hset": 1, "pexpire": 1}
    return {
        "machine": {"cores": 2, "cpu": "Test CPU"},
        "sizing": {
            "workers": 2,
            "tokens": 100,
            "connections": 8,
            "seconds": 1,
            "table_rows": 1000,
            "phases": {
                "l1_hit": {
                    "units": 1000,
                    # A tenth were L1 misses at 200 µs: hits cost 100 µs.
                    "cpu_us": {"gw": 110, "introspector": 10},
                    "redis_commands": 6.1,
                    "redis_commands_by_name": {**lease, "incrby": 0.5, "expire": 0.5, "get": 0.1},
                    "redis_round_trips": 0.6,
                    "redis_cpu_us": 10,
                    "l1_hits": 900,
                    "l1_misses": 100,
                },
                "l1_miss": {
                    "units": 1000,
                    "cpu_us": {"gw-no-l1": 200, "introspector": 100},
                    "redis_commands": 5.9,
                    "redis_commands_by_name": {**lease, "get": 0.9},
                    "redis_round_trips": 1.5,
                    "redis_cpu_us": 15,
                },
                "redis_hit": {"units": 10, "cpu_us": {"introspector": 90}, "redis_commands": 1,
                              "redis_commands_by_name": {"get": 1}, "redis_round_trips": 1,
                              "redis_cpu_us": 5},
                "redis_miss": {"units": 10, "cpu_us": {"introspector": 1000},
                               "redis_commands": 2, "redis_commands_by_name": {"get": 1, "set": 1},
                               "redis_round_trips": 2, "redis_cpu_us": 9, "pg_transactions": 2},
                "argon2": {"units": 10, "cpu_us": {"introspector": 50_000}, "redis_commands": 3,
                           "redis_commands_by_name": {}, "redis_round_trips": 3,
                           "redis_cpu_us": 100},
            },
            "memory_bytes": {
                "cached_token": {"keys": 10, "bytes": 500},
                "bucket": {"keys": 10, "bytes": 100},
                "usage_counter": {"keys": 10, "bytes": 100},
            },
        },
    }  # fmt: skip


#: 1,000 tokens at 1,000 req/s: each asked once a second. No L1 (TTL 0); the Redis cache keeps
#: an entry 1 s (x = 1: half the introspections hit); usage counters written per request.
SMALL = Assumptions(
    live_tokens=1000,
    new_tokens_per_second=10,
    l1_ttl=0,
    cache_ttl=1,
    bucket_seconds=1,
    usage_minutes=10,
    usage_flush=0,
    utilisation=0.5,
    shard_memory_gb=0.001,
)


def test_costs_are_read_per_request_from_the_report() -> None:
    costs = Costs.from_report(_report())
    assert costs.gateway_hit == pytest.approx(100e-6)
    assert costs.gateway_miss == pytest.approx(200e-6)
    assert costs.introspect_hit == pytest.approx(100e-6)  # under the gateway's load (l1_miss)
    assert costs.introspect_miss == pytest.approx(1000e-6)
    assert costs.argon2_per_core == pytest.approx(20)
    # The limiter's share: all but the usage counters' INCRBY and EXPIRE and the cache's GET;
    # its round trips are the phase's less the L1 misses' cache reads.
    assert costs.commands_gateway == pytest.approx(5)
    assert costs.round_trips_gateway == pytest.approx(0.5)
    assert costs.lease_scripts == 1
    assert (costs.commands_hit, costs.commands_miss) == (1, 2)
    assert costs.redis_ops_per_core == pytest.approx(480_000)
    assert costs.pg_per_miss == 2


def test_the_fleet_for_a_hand_computed_case() -> None:
    fleet = size(1000, Costs.from_report(_report()), SMALL)
    assert (fleet.l1_hit, fleet.cache_hit) == (0, 0.5)
    assert fleet.introspections == 1000
    # 1,000 × 200 µs = 0.2 cores, planned at half load: 0.4, so one.
    assert fleet.gateway_cores == 1
    # 500 × 100 µs + 500 × 1 ms + 10 new tokens ÷ 20 argon2/s = 1.05 cores; ÷ 0.5 → 3.
    assert fleet.introspector_cores == 3
    assert fleet.pg_transactions == 1000
    # 1,000 × (5 limiter + 2 usage) + 500 × 1 + 500 × 2.
    assert fleet.redis_commands == pytest.approx(8500)
    assert fleet.redis_round_trips == pytest.approx(1000 * 0.5 + 500 * 1 + 500 * 2)
    # 500 cached tokens × 500 B + 500 live buckets × 100 B + 10 minutes × ~1,000 counters × 100 B.
    usage = 1000 * 10 * (1 - math.exp(-60)) * 100 / 1e9
    assert fleet.usage_gb == pytest.approx(usage)
    assert fleet.redis_gb == pytest.approx(300_000 / 1e9 + usage)
    # The CPU needs one shard (8,500 of 240,000 commands/s); 1.3 MB at 1 MB a shard needs two.
    assert fleet.redis_shards == 2


def test_cache_and_usage_formulas() -> None:
    assert hit_ratio(0, 10) == 0
    assert hit_ratio(1, 3) == 0.75  # a miss, then three hits while the entry lives
    assert usage_commands(0, SMALL) == 2
    busy = Assumptions(usage_flush=5)
    assert usage_commands(10, busy) == pytest.approx(2 * (1 - math.exp(-50)) / 50)


def test_the_l1_hit_ratio_matches_the_gateway_count_it_produces() -> None:
    """The L1 is per process: its hit ratio is that of the per-process rate, r / G."""
    a = Assumptions(live_tokens=1000, l1_ttl=10)
    fleet = size(50_000, Costs.from_report(_report()), a)
    assert fleet.l1_hit == pytest.approx(hit_ratio(50 / fleet.gateway_cores, 10))


def test_the_script_prints_and_rewrites_the_tables(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    report.write_text(json.dumps(_report()))
    page = tmp_path / "scaling.md"
    page.write_text(f"# Scaling\n\n{sizing.BEGIN}\nold\n{sizing.END}\n\nAfter.\n")
    sizing.update_docs(report, page=page, copy_to=tmp_path / "copy.json")
    text = page.read_text()
    assert "old" not in text and text.endswith(f"{sizing.END}\n\nAfter.\n")
    table = "\n".join(sizing.sizing_markdown(_report()))
    assert f"{sizing.BEGIN}\n{table}\n{sizing.END}" in text
    assert "| 1,000,000 |" in table and "Test CPU" in table
    assert json.loads((tmp_path / "copy.json").read_text()) == _report()
