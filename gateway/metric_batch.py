"""Per-request counts kept in plain integers and handed to prometheus_client once per event-loop
turn.

A prometheus_client increment takes a lock (and, with several workers, checks the pid and writes
a memory-mapped file); the relay makes four of them per request. Under load one loop turn
answers many requests, so adding them up first costs one increment per series per turn instead.
The batch goes out in a ``call_soon`` callback: after the callbacks of the turn that filled it,
before anything later (a scrape included) can run, so no scrape ever misses a finished request.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from typing import Any

from prometheus_client import Counter, Histogram


class MetricBatch:
    """Counts and histogram observations waiting for the end of the loop turn."""

    def __init__(self) -> None:
        self._counts: dict[Counter, int] = {}
        #: Per histogram: observations per bucket index (only the buckets hit), and their sum.
        self._observed: dict[Histogram, tuple[dict[int, int], list[float]]] = {}
        self._bounds: dict[Histogram, list[float]] = {}
        self._pending = False

    def count(self, child: Counter) -> None:
        """``child.inc()``, batched. ``child`` is a labelled child (or a metric without labels)."""
        counts = self._counts
        counts[child] = counts.get(child, 0) + 1
        if not self._pending:
            self._schedule()

    def observe(self, child: Histogram, value: float) -> None:
        """``child.observe(value)``, batched."""
        bounds = self._bounds.get(child)
        if bounds is None:
            bounds = self._bounds[child] = list(_upper_bounds(child))
        entry = self._observed.get(child)
        if entry is None:
            entry = self._observed[child] = ({}, [0.0])
        # prometheus_client counts an observation in the first bucket whose bound is ≥ it.
        hits = entry[0]
        index = bisect_left(bounds, value)
        hits[index] = hits.get(index, 0) + 1
        entry[1][0] += value
        if not self._pending:
            self._schedule()

    def _schedule(self) -> None:
        self._pending = True
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no loop (a test calling a stage directly): pass it on now
            self.flush()

    def flush(self) -> None:
        """Hand everything waiting to prometheus_client."""
        self._pending = False
        counts, self._counts = self._counts, {}
        for counter, n in counts.items():
            counter.inc(n)
        observed, self._observed = self._observed, {}
        for histogram, (hits, total) in observed.items():
            _add(histogram, hits, total[0])


def _upper_bounds(histogram: Histogram) -> list[float]:
    bounds: list[float] = histogram._upper_bounds
    return bounds


def _add(histogram: Any, hits: dict[int, int], total: float) -> None:
    # What Histogram.observe does, for many observations at once: the same per-bucket values
    # (not cumulative until exposition) and the sum, touching only the buckets hit. Private,
    # so test_metric_batch compares the result with plain observe() calls: an upgrade that
    # changes this fails there.
    buckets = histogram._buckets
    for index, n in hits.items():
        buckets[index].inc(n)
    histogram._sum.inc(total)
