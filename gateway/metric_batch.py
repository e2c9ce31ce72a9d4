"""Per-request counts kept in plain integers and handed to prometheus_client every
:data:`FLUSH_SECONDS`.

A prometheus_client increment takes a lock (and, with several workers, checks the pid with a
system call and writes a memory-mapped file); a bearer request makes five of them. Adding them
up first costs one increment per series per flush instead. A flush every loop turn, a few
requests under load, still cost a gateway about 5 µs of CPU per passthrough request and 12 µs
per bearer request on the benchmark's machine (against no flush at all); every 10 ms, a flush
carries a few dozen requests (docs/performance.md).

A scrape sees every request finished before it: it flushes its own worker's batch first, and
with several workers it waits :data:`SCRAPE_WAIT_SECONDS` (``GatewayMetrics.render``), which is
longer than a flush interval, so that the others' batches are out too.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram

#: How long counts wait in the batch before going to prometheus_client.
FLUSH_SECONDS = 0.01
#: How long a scrape waits for the other workers' batches: a flush interval, and time to spare
#: for a loop that runs its timer late.
SCRAPE_WAIT_SECONDS = 0.1


class MetricBatch:
    """Counts and histogram observations waiting for the next flush."""

    def __init__(self) -> None:
        self._counts: dict[Counter, int] = {}
        #: Per histogram: observations per bucket index (only the buckets hit), and their sum.
        self._observed: dict[Histogram, tuple[dict[int, int], list[float]]] = {}
        self._bounds: dict[Histogram, list[float]] = {}
        #: A flush is scheduled (the relay checks it itself: see :meth:`add_drain`).
        self.pending = False
        self._drains: list[Callable[[], None]] = []

    def add_drain(self, drain: Callable[[], None]) -> None:
        """Call ``drain`` at each flush, first: it hands the batch what its owner noted
        meanwhile. (The relay notes each request's duration in a plain list, with a
        :meth:`schedule` when :attr:`pending` is false, and turns them into observations
        here: the per-request work left is one append, the rest runs once per flush.)"""
        self._drains.append(drain)

    def count(self, child: Counter, n: int = 1) -> None:
        """``child.inc(n)``, batched. ``child`` is a labelled child (or a metric without
        labels)."""
        counts = self._counts
        counts[child] = counts.get(child, 0) + n
        if not self.pending:
            self.schedule()

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
        if not self.pending:
            self.schedule()

    def schedule(self) -> None:
        """Flush in :data:`FLUSH_SECONDS` (at once without a running loop)."""
        self.pending = True
        try:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
        except RuntimeError:  # no loop (a test calling a stage directly): pass it on now
            self.flush()

    def flush(self) -> None:
        """Hand everything waiting to prometheus_client."""
        self.pending = True  # what the drains add goes out now, without another schedule
        try:
            for drain in self._drains:
                drain()
        finally:
            self.pending = False  # even after a failing drain: the next count schedules again
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
