"""The introspector's slow paths: argon2 verification and cache misses, asked directly.

The requests go straight to the introspector's ``POST /introspect`` with the internal secret,
as the gateway sends them, so what is timed is the introspector alone.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp

from tests.bench.dataset import BenchToken, make_tokens
from tests.bench.stack import Stack


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Latencies:
    """A set of request latencies, in milliseconds."""

    samples: list[float]

    @property
    def p50(self) -> float:
        """Median."""
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        """99th percentile."""
        return percentile(self.samples, 0.99)

    def as_dict(self) -> dict[str, float | int]:
        """For the JSON report."""
        return {
            "count": len(self.samples),
            "p50_ms": round(self.p50, 3),
            "p99_ms": round(self.p99, 3),
        }


class Introspect:
    """A client of the introspector's ``/introspect``."""

    def __init__(self, stack: Stack, session: aiohttp.ClientSession) -> None:
        self._url = stack.services["introspector"].url
        self._secret = stack.internal_secret
        self._session = session

    async def ask(self, token: str) -> tuple[bool, float]:
        """(active, milliseconds) for one introspection."""
        started = time.perf_counter()
        async with self._session.post(
            self._url + "/introspect",
            data={"token": token},
            headers={"X-Keygate-Internal-Secret": self._secret},
        ) as response:
            response.raise_for_status()
            body = await response.json()
        return bool(body.get("active")), (time.perf_counter() - started) * 1000

    async def loop_lag(self, reset: bool = False) -> dict[str, float]:
        """The probe's lag window (see ``probed_introspector``)."""
        async with self._session.get(
            self._url + "/_bench/loop-lag",
            params={"reset": "1"} if reset else {},
            headers={"X-Keygate-Internal-Secret": self._secret},
        ) as response:
            response.raise_for_status()
            data: dict[str, float] = await response.json()
            return data


@dataclass(frozen=True)
class ColdPath:
    """argon2 verifications per second, and the event loop's lag meanwhile and at rest."""

    verifications: int
    seconds: float
    concurrency: int
    lag_idle: dict[str, float]
    lag_during: dict[str, float]

    @property
    def per_second(self) -> float:
        """Verifications per second."""
        return self.verifications / self.seconds

    def as_dict(self) -> dict[str, object]:
        """For the JSON report."""
        return {
            "verifications": self.verifications,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "concurrency": self.concurrency,
            "loop_lag_idle": self.lag_idle,
            "loop_lag_during": self.lag_during,
        }


async def cold_path(client: Introspect, tokens: list[BenchToken], concurrency: int) -> ColdPath:
    """Every token once (none cached), ``concurrency`` at a time."""
    await client.loop_lag(reset=True)
    await asyncio.sleep(1.0)
    idle = await client.loop_lag(reset=True)
    queue = list(tokens)

    async def worker() -> None:
        while queue:
            active, _ = await client.ask(queue.pop().plaintext)
            if not active:
                raise RuntimeError("a real token was refused on the cold path")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    during = await client.loop_lag()
    return ColdPath(len(tokens), seconds, concurrency, idle, during)


@dataclass(frozen=True)
class CacheMiss:
    """Introspection latency when Redis has nothing on the token."""

    table_rows: int
    verified: Latencies  # real token: Postgres row + argon2
    unknown: Latencies  # unknown id: the Postgres lookup alone

    def as_dict(self) -> dict[str, object]:
        """For the JSON report."""
        return {
            "table_rows": self.table_rows,
            "real_token": self.verified.as_dict(),
            "unknown_id": self.unknown.as_dict(),
        }


async def cache_miss(
    client: Introspect, tokens: list[BenchToken], unknown: int, table_rows: int
) -> CacheMiss:
    """One at a time: each of ``tokens`` (uncached) and ``unknown`` ids that have no row.

    A few unknown ids go first, untimed, so that both table sizes are measured warm.
    """
    for token in make_tokens(20):
        await client.ask(token.plaintext)
    verified: list[float] = []
    for token in tokens:
        active, ms = await client.ask(token.plaintext)
        if not active:
            raise RuntimeError("a real token was refused on a cache miss")
        verified.append(ms)
    missing: list[float] = []
    for token in make_tokens(unknown):
        active, ms = await client.ask(token.plaintext)
        if active:
            raise RuntimeError("an unknown token was accepted")
        missing.append(ms)
    return CacheMiss(table_rows, Latencies(verified), Latencies(missing))
