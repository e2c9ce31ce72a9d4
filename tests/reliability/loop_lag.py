"""Event-loop lag: how late the test process's loop wakes up while the gateway in it works.

The cost-attack tests run the gateway in the test process and measure how much an attack delays
its event loop, with the test run's own heap kept out of the garbage collector's way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator


class LagProbe:
    """Samples event-loop lag: how much later than asked a 5 ms sleep wakes up."""

    PERIOD = 0.005

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.PERIOD)
            self.samples.append((asked, loop.time() - asked - self.PERIOD))

    def between(self, start: float, end: float) -> list[float]:
        return [lag for at, lag in self.samples if start <= at < end]


@contextlib.asynccontextmanager
async def probing() -> AsyncIterator[LagProbe]:
    """A :class:`LagProbe` sampling for as long as the block runs."""
    probe = LagProbe()
    task = asyncio.create_task(probe.run())
    try:
        yield probe
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the test run's own objects out of garbage collection while measuring.

    This process holds pytest, Hypothesis and every module the suite imported; a full
    collection of that heap stalls the loop for hundreds of milliseconds, which a gateway in a
    process of its own would never see. Frozen objects are skipped by the collector
    (:func:`gc.freeze`), so what is left is the gateway's own garbage.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
