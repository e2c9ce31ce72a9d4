"""The metric batch hands prometheus_client exactly what direct calls would have."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.metric_batch import FLUSH_SECONDS, MetricBatch

BUCKETS = (0.001, 0.01, 0.1, 1.0)
#: Values on, between, below and above the bounds (bisect_left must match observe's "≤").
VALUES = [0.0, 0.0005, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 30.0]


def _metrics() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("kg_test_total", "test", ["result"], registry=registry)
    histogram = Histogram("kg_test_seconds", "test", ["route"], buckets=BUCKETS, registry=registry)
    return registry, counter, histogram


def _exposition(registry: CollectorRegistry) -> list[str]:
    # _created differs between the two registries by construction time.
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


async def test_batched_counts_and_observations_expose_like_direct_calls() -> None:
    direct, counter, histogram = _metrics()
    for value in VALUES:
        counter.labels("ok").inc()
        histogram.labels("/").observe(value)
    batched, counter_b, histogram_b = _metrics()
    batch = MetricBatch()
    for value in VALUES:
        batch.count(counter_b.labels("ok"))
        batch.observe(histogram_b.labels("/"), value)

    await asyncio.sleep(0)
    assert _exposition(batched) != _exposition(direct)  # nothing out before the flush is due
    await asyncio.sleep(FLUSH_SECONDS)
    for _ in range(100):  # the flush's timer runs at the loop's first turn once it is due
        if _exposition(batched) == _exposition(direct):
            break
        await asyncio.sleep(0.01)

    assert _exposition(batched) == _exposition(direct)


async def test_a_flush_empties_the_batch() -> None:
    _, counter, _ = _metrics()
    batch = MetricBatch()
    batch.count(counter.labels("ok"))
    batch.flush()
    batch.flush()
    await asyncio.sleep(0)
    assert counter.labels("ok")._value.get() == 1


def test_without_a_loop_counts_go_out_at_once() -> None:
    registry, counter, histogram = _metrics()
    batch = MetricBatch()
    batch.count(counter.labels("ok"))
    batch.observe(histogram.labels("/"), 0.05)
    text = "\n".join(_exposition(registry))
    assert 'kg_test_total{result="ok"} 1.0' in text
    assert 'kg_test_seconds_count{route="/"} 1.0' in text
