"""The wrk measurements: every contender at full load and at concurrency 1, and the flood.

Every contender gets the very same request (``GET /bench`` with the warm token in
``Authorization``) from the same wrk (one thread, same connections, same duration). Rounds go
through the contenders in turn, so a burst of noise from elsewhere on the machine hits one
round of each rather than all rounds of one; each contender's best round counts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.load import LoadResult, Wrk
from tests.bench.stack import Stack

#: Contender name → service name in the stack. The upstream alone is the baseline.
CONTENDERS = {
    "upstream (direct)": "upstream",
    "nginx plain proxy": "nginx-plain",
    "bare Python relay (no checks)": "bare-relay",
    "nginx auth_request → keygate": "nginx-auth-request",
    "keygate passthrough": "keygate-passthrough",
    "keygate auth + limit + headers": "keygate",
}
PATH = "/bench"


@dataclass(frozen=True)
class LoadPlan:
    """How long and how hard each wrk run is."""

    connections: int
    seconds: float
    warmup_seconds: float
    rounds: int


def _best(results: list[LoadResult], by_latency: bool) -> LoadResult:
    if by_latency:
        return min(results, key=lambda r: r.p50_ms)
    return max(results, key=lambda r: r.rps)


async def contenders(
    stack: Stack, wrk: Wrk, token: str, plan: LoadPlan, *, by_latency: bool = False
) -> dict[str, LoadResult]:
    """Each contender's best round at ``plan.connections``."""
    runs: dict[str, list[LoadResult]] = {name: [] for name in CONTENDERS}
    for _ in range(plan.rounds):
        for name, service in CONTENDERS.items():
            url = stack.services[service].url + PATH
            if plan.warmup_seconds > 0:
                await asyncio.to_thread(
                    wrk.run,
                    url,
                    connections=plan.connections,
                    seconds=plan.warmup_seconds,
                    token=token,
                )
            result = await asyncio.to_thread(
                wrk.run, url, connections=plan.connections, seconds=plan.seconds, token=token
            )
            if result.errors or result.status_errors:
                raise RuntimeError(
                    f"{name}: {result.errors} socket errors, {result.status_errors} error "
                    "statuses — the contender is misconfigured or overloaded"
                )
            runs[name].append(result)
    return {name: _best(results, by_latency) for name, results in runs.items()}


@dataclass(frozen=True)
class FloodResult:
    """Valid-token latency alone and during a wrong-secret flood."""

    idle: LoadResult
    during_flood: LoadResult
    flood: LoadResult

    @property
    def p99_ratio(self) -> float:
        """Valid p99 under flood ÷ valid p99 idle."""
        return self.during_flood.p99_ms / self.idle.p99_ms

    def as_dict(self) -> dict[str, object]:
        """For the JSON report."""
        return {
            "valid_idle": self.idle.as_dict(),
            "valid_during_flood": self.during_flood.as_dict(),
            "flood": self.flood.as_dict(),
            "p99_ratio": round(self.p99_ratio, 3),
        }


async def wrong_secret_flood(
    stack: Stack,
    wrk: Wrk,
    token: str,
    flood_file: Path,
    *,
    seconds: float,
    flood_connections: int,
) -> FloodResult:
    """Valid requests at concurrency 1, first alone, then while another wrk sends wrong
    secrets for the same token id (all distinct, so nothing can be coalesced) as fast as
    ``flood_connections`` connections allow."""
    url = stack.services["keygate"].url + PATH
    idle = await asyncio.to_thread(wrk.run, url, connections=1, seconds=seconds, token=token)
    flood = wrk.start(
        url, connections=flood_connections, seconds=seconds + 3, token_file=flood_file
    )
    await asyncio.sleep(1.5)
    during = await asyncio.to_thread(wrk.run, url, connections=1, seconds=seconds, token=token)
    flood_result = await asyncio.to_thread(Wrk.result, flood)
    if during.status_errors or idle.status_errors:
        raise RuntimeError("a valid token was refused during the flood measurement")
    return FloodResult(idle, during, flood_result)


def write_token_file(path: Path, tokens: list[str]) -> Path:
    """One token per line, for the wrk script."""
    path.write_text("\n".join(tokens) + "\n")
    return path


def elapsed_since(started: float) -> float:
    """Seconds since ``started`` (``time.monotonic``)."""
    return time.monotonic() - started
