"""What one request costs each tier, counted rather than timed: the sizing model's inputs.

docs/operations/scaling.md sizes a fleet from these figures (``python -m tests.bench.sizing``).
Each phase reads counters before and after a stretch of traffic and divides by the requests:

* CPU seconds of every keygate process (``/proc/<pid>/stat``, workers included);
* Redis's ``INFO commandstats`` (commands by name), ``INFO cpu`` (its CPU seconds) and
  ``total_reads_processed`` (read events: one per round trip, a pipeline being one);
* Postgres's ``xact_commit + xact_rollback`` of the bench database: a statement outside a
  transaction is one, and so is each reset the connection pool sends when a connection goes back.

Redis counts a command a Lua script runs as a command of its own (``INFO commandstats``), so the
counts here do too: that is the work Redis does, and the shard capacity is measured in the same
unit.

CPU time per request moves less on a busy machine than requests per second do (in runs on the
same shared machine, about a third against a half or more), which is why the model uses it: a
core's capacity is the inverse. Our own reads (``INFO``, ``MEMORY``, ``SCAN``, the
``pg_stat_database`` query) are left out of the counts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tests.bench.load import LoadResult
from tests.bench.stack import DATABASE, Stack

#: Commands this module sends itself while measuring; never counted as keygate's.
_OURS = {"info", "memory", "scan", "hello", "client", "config"}
#: A Postgres backend publishes its statistics when it goes idle, but at most once a second;
#: what it holds back then waits for its idle timer, 10 s (PGSTAT_IDLE_INTERVAL).
PG_STATS_SECONDS = 11.0


@dataclass(frozen=True)
class Counters:
    """Every counter a phase divides, at one moment."""

    commands: dict[str, int]
    redis_cpu: float
    redis_reads: int
    cpu: dict[str, float]
    pg_transactions: int


async def read_counters(stack: Stack, services: list[str]) -> Counters:
    """The counters now; ``services`` name the processes whose CPU is read."""
    redis = stack.redis()
    try:
        stats = await redis.info("commandstats")
        cpu = await redis.info("cpu")
        reads = int((await redis.info("stats"))["total_reads_processed"])
    finally:
        await redis.aclose()
    commands = {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if name.removeprefix("cmdstat_").split("|")[0] not in _OURS
    }
    conn = await stack.connect()
    try:
        statements = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            DATABASE,
        )
    finally:
        await conn.close()
    return Counters(
        commands,
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        reads,
        {name: stack.services[name].cpu_seconds() for name in services},
        int(statements),
    )


@dataclass
class Phase:
    """The counters' growth over ``units`` requests (or introspections)."""

    units: int
    before: Counters
    after: Counters
    extra: dict[str, Any] = field(default_factory=dict)
    #: Commands (and round trips, under ``"round trips"``) the bench itself sent meanwhile.
    ours: dict[str, int] = field(default_factory=dict)
    #: Whether both reads waited for Postgres's statistics (else its count is left out).
    pg_settled: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Per-unit figures for the JSON report (CPU and Redis CPU in microseconds)."""
        n = max(1, self.units)
        b, a = self.before, self.after
        grown = {
            name: a.commands.get(name, 0) - b.commands.get(name, 0) - self.ours.get(name, 0)
            for name in sorted(a.commands)
        }
        commands = {name: count / n for name, count in grown.items() if count > 0}
        reads = a.redis_reads - b.redis_reads - self.ours.get("round trips", 0)
        return {
            "units": self.units,
            "cpu_us": {k: round((a.cpu[k] - b.cpu[k]) / n * 1e6, 2) for k in a.cpu},
            "redis_commands": round(sum(commands.values()), 4),
            "redis_commands_by_name": {k: round(v, 4) for k, v in commands.items()},
            "redis_round_trips": round(reads / n, 4),
            "redis_cpu_us": round((a.redis_cpu - b.redis_cpu) / n * 1e6, 2),
            **self.extra,
        } | (
            # The read that took ``before`` is itself counted in ``after``.
            {"pg_transactions": round((a.pg_transactions - b.pg_transactions - 1) / n, 4)}
            if self.pg_settled
            else {}
        )


async def settled_counters(stack: Stack, services: list[str], seconds: float = 0.5) -> Counters:
    """:func:`read_counters` after ``seconds`` of quiet (:data:`PG_STATS_SECONDS` for a
    Postgres count), so the last requests' work is done and published."""
    await asyncio.sleep(seconds)
    return await read_counters(stack, services)


def requests_of(result: LoadResult) -> int:
    """The requests of a wrk run, which must all have succeeded to be counted as costs."""
    if result.errors or result.status_errors:
        raise RuntimeError(
            f"{result.errors} socket errors, {result.status_errors} error statuses: "
            "the costs would be those of refusals"
        )
    return result.requests


async def key_memory(
    stack: Stack, pattern: str, keys: list[str] | None = None, sample: int = 50
) -> dict[str, float]:
    """``MEMORY USAGE`` of ``keys``, or of up to ``sample`` keys matching ``pattern``: the
    mean bytes and how many keys were read."""
    redis = stack.redis()
    try:
        if keys is None:
            keys = []
            async for key in redis.scan_iter(match=pattern, count=1000):
                keys.append(key.decode())
                if len(keys) >= sample:
                    break
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.memory_usage(key)
            sizes = [s for s in await pipe.execute() if s is not None]
    finally:
        await redis.aclose()
    if not sizes:
        raise RuntimeError(f"no key matches {pattern}: nothing wrote it")
    return {"keys": len(sizes), "bytes": round(sum(sizes) / len(sizes), 1)}
