"""How many Redis round trips the rate limiter makes per admitted request under full load.

Read from the gateway's own counters (``/_keygate/metrics``, which covers every worker):
``keygate_gateway_ratelimit_round_trips_total`` over ``keygate_ratelimit_decisions_total``
with ``result="allowed"``, across one wrk run against the keygate contender alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.bench.load import Wrk
from tests.bench.stack import Stack
from tests.bench.throughput import PATH

_ROUND_TRIPS = "keygate_gateway_ratelimit_round_trips"
_DECISIONS = "keygate_ratelimit_decisions"


@dataclass(frozen=True)
class RoundTrips:
    """Round trips and admitted requests over one run."""

    round_trips: float
    admitted: float
    connections: int

    @property
    def per_admitted(self) -> float:
        """Round trips per admitted request."""
        return self.round_trips / self.admitted if self.admitted else float("nan")

    def as_dict(self) -> dict[str, float]:
        """For the JSON report."""
        return {
            "round_trips": self.round_trips,
            "admitted": self.admitted,
            "connections": self.connections,
            "per_admitted": round(self.per_admitted, 5),
        }


async def _counters(url: str) -> tuple[float, float]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    round_trips = admitted = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{_ROUND_TRIPS}_total":
                round_trips += sample.value
            elif sample.name == f"{_DECISIONS}_total" and sample.labels.get("result") == "allowed":
                admitted += sample.value
    return round_trips, admitted


async def limiter_round_trips(
    stack: Stack, wrk: Wrk, token: str, *, connections: int, seconds: float
) -> RoundTrips:
    """One wrk run against the keygate contender, with its counters read before and after."""
    base = stack.services["keygate"].url
    metrics = base + "/_keygate/metrics"
    trips_before, admitted_before = await _counters(metrics)
    await asyncio.to_thread(
        wrk.run, base + PATH, connections=connections, seconds=seconds, token=token
    )
    trips_after, admitted_after = await _counters(metrics)
    return RoundTrips(trips_after - trips_before, admitted_after - admitted_before, connections)
