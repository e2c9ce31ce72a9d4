"""The sizing model of docs/operations/scaling.md: a fleet from per-request costs.

Traffic is spread evenly over the live tokens, the worst case for every cache: each token is
asked ``r = rate / tokens`` times a second. An entry written on a miss lives ``ttl`` seconds and
is not renewed by hits, so a cache sees ``1 + r·ttl`` requests per miss. The gateway's L1 is per
process, and a balanced fleet of ``G`` processes shows each only ``r / G`` of a token.
:mod:`tests.bench.sizing` prints it for a bench JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Commands of the gateway phase that the model does not take as the limiter's.
_NOT_LIMITER = ("get", "set", "incrby", "expire")


@dataclass(frozen=True)
class Assumptions:
    """What the model does not measure (docs/operations/scaling.md, "Assumptions")."""

    live_tokens: int = 1_000_000
    new_tokens_per_second: float = 10.0  # one argon2 hash each, at creation
    l1_ttl: float = 10.0  # KEYGATE_L1_CACHE_TTL_SECONDS
    cache_ttl: float = 60.0  # KEYGATE_CACHE_TTL_SECONDS
    bucket_seconds: float = 1.1  # a bucket's PEXPIRE after a take at the default 600/min
    usage_minutes: int = 25 * 60  # usage counters: one key per token and minute, kept 25 h
    usage_flush: float = 5.0  # seconds between a gateway process's usage-counter writes
    utilisation: float = 0.6  # the busiest any core or shard is planned to run
    shard_memory_gb: float = 16.0  # the data one Redis shard is planned to hold


@dataclass(frozen=True)
class Costs:
    """Per-request figures read from the JSON (CPU in core-seconds)."""

    gateway_hit: float  # gateway CPU per request answered from its L1
    gateway_miss: float  # ... per request that asked the introspector
    introspect_hit: float  # introspector CPU per introspection answered from Redis
    introspect_miss: float  # ... per introspection that went to Postgres
    argon2_per_core: float  # argon2 hashes or verifications per core-second
    lease_scripts: float  # the limiter's lease scripts (EVALSHA) per request
    commands_gateway: float  # Redis commands per request, by the limiter
    commands_hit: float  # ... per introspection answered from Redis
    commands_miss: float  # ... per introspection that went to Postgres
    round_trips_gateway: float
    round_trips_hit: float
    round_trips_miss: float
    pg_per_miss: float  # Postgres transactions per introspection that went to Postgres
    redis_ops_per_core: float  # Redis commands per Redis CPU-second, in the gateway mix
    bytes_token: float
    bytes_bucket: float
    bytes_usage: float

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> Costs:
        """The figures of a bench JSON's ``sizing`` section."""
        sizing = report["sizing"]
        p = sizing["phases"]
        hit, miss, argon2 = p["l1_hit"], p["l1_miss"], p["argon2"]
        cached, cold = p["redis_hit"], p["redis_miss"]
        gateway = next(k for k in hit["cpu_us"] if k != "introspector")
        ops = sum(p[k]["redis_commands"] * p[k]["units"] for k in ("l1_hit", "l1_miss"))
        cpu = sum(p[k]["redis_cpu_us"] * p[k]["units"] for k in ("l1_hit", "l1_miss")) / 1e6
        memory = sizing["memory_bytes"]
        gateway_miss = next(v for k, v in miss["cpu_us"].items() if k != "introspector") / 1e6
        # The L1 phase has some misses (a worker's first sight of a token, an L1 emptied by a
        # lost revocation channel): its CPU is hits and misses mixed, and a miss costs what the
        # miss phase says, so a hit costs the rest.
        h = hit["l1_hits"] / (hit["l1_hits"] + hit["l1_misses"])
        mixed = hit["cpu_us"][gateway] / 1e6
        # Each of those misses also made one introspection, with the round trip its cache
        # read takes; they are not the limiter's.
        reads = hit["redis_commands_by_name"].get("get", 0.0)
        return cls(
            gateway_hit=(mixed - (1 - h) * gateway_miss) / h,
            gateway_miss=gateway_miss,
            introspect_hit=miss["cpu_us"]["introspector"] / 1e6,
            introspect_miss=cold["cpu_us"]["introspector"] / 1e6,
            argon2_per_core=1e6 / argon2["cpu_us"]["introspector"],
            # Less the introspector's cache reads and writes (its own figures below) and the
            # usage counters' INCRBY and EXPIRE, which the model counts per token (usage()).
            commands_gateway=hit["redis_commands"]
            - sum(hit["redis_commands_by_name"].get(k, 0.0) for k in _NOT_LIMITER),
            lease_scripts=hit["redis_commands_by_name"].get("evalsha", 0.0),
            commands_hit=cached["redis_commands"],
            commands_miss=cold["redis_commands"],
            round_trips_gateway=hit["redis_round_trips"] - reads * cached["redis_round_trips"],
            round_trips_hit=cached["redis_round_trips"],
            round_trips_miss=cold["redis_round_trips"],
            pg_per_miss=cold["pg_transactions"],
            redis_ops_per_core=ops / cpu,
            bytes_token=memory["cached_token"]["bytes"],
            bytes_bucket=memory["bucket"]["bytes"],
            bytes_usage=memory["usage_counter"]["bytes"],
        )


def usage_commands(per_token_per_process: float, a: Assumptions) -> float:
    """Usage-counter commands per request: each process writes INCRBY and EXPIRE once per
    token and flush, however many requests the token had meanwhile (``λ`` on average)."""
    lam = per_token_per_process * a.usage_flush
    return 2.0 if lam < 1e-9 else 2 * (1 - math.exp(-lam)) / lam


def hit_ratio(per_token_rate: float, ttl: float) -> float:
    """A cache's hit ratio when each entry lives ``ttl`` from the miss that wrote it."""
    x = per_token_rate * ttl
    return x / (1 + x)


@dataclass(frozen=True)
class Fleet:
    """What serves ``rate`` requests a second."""

    rate: float
    l1_hit: float
    cache_hit: float
    introspections: float  # per second, from the gateways to the introspectors
    pg_transactions: float  # per second
    gateway_cores: int
    introspector_cores: int
    redis_commands: float  # per second
    redis_round_trips: float  # per second
    redis_gb: float
    usage_gb: float  # of which the usage counters
    redis_shards: int


def size(rate: float, costs: Costs, a: Assumptions) -> Fleet:
    """The fleet for ``rate`` requests per second under ``a``."""
    per_token = rate / a.live_tokens
    processes = 1
    for _ in range(50):  # the L1 hit ratio depends on the gateway count, and back
        l1_hit = hit_ratio(per_token / processes, a.l1_ttl)
        asked = rate * (1 - l1_hit)
        cpu = (rate - asked) * costs.gateway_hit + asked * costs.gateway_miss
        processes = max(1, math.ceil(cpu / a.utilisation))
    cache_hit = hit_ratio(asked / a.live_tokens, a.cache_ttl)
    missed = asked * (1 - cache_hit)
    answered = asked - missed
    introspector = (
        answered * costs.introspect_hit
        + missed * costs.introspect_miss
        + a.new_tokens_per_second / costs.argon2_per_core
    )
    gateway_commands = costs.commands_gateway + usage_commands(per_token / processes, a)
    commands = rate * gateway_commands + answered * costs.commands_hit
    commands += missed * costs.commands_miss
    trips = rate * costs.round_trips_gateway + answered * costs.round_trips_hit
    trips += missed * costs.round_trips_miss
    tokens_cached = a.live_tokens * cache_hit  # the share of time a token's entry is there
    buckets = a.live_tokens * hit_ratio(per_token, a.bucket_seconds)
    counters = a.live_tokens * a.usage_minutes * (1 - math.exp(-60 * per_token))
    usage = counters * costs.bytes_usage / 1e9
    memory = (tokens_cached * costs.bytes_token + buckets * costs.bytes_bucket) / 1e9 + usage
    shards = max(
        math.ceil(commands / (costs.redis_ops_per_core * a.utilisation)),
        math.ceil(memory / a.shard_memory_gb),
    )
    return Fleet(
        rate,
        l1_hit,
        cache_hit,
        asked,
        missed * costs.pg_per_miss,
        processes,
        max(1, math.ceil(introspector / a.utilisation)),
        commands,
        trips,
        memory,
        usage,
        shards,
    )
