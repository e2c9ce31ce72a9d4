"""keygate's introspector with an event-loop lag probe, for the cold-path measurement.

The app is the real ``introspector.app.create_app`` served the real way
(``keygate_core.serving.serve``); the probe only adds a task that sleeps 5 ms at a time and
records how late each wake-up is, and one route that reports those delays:
``GET /_bench/loop-lag`` (``?reset=1`` starts a new window). The route sits behind the
introspector's own internal-secret check like every other data route.

Run as ``python -m tests.bench.probed_introspector`` with the usual ``KEYGATE_*`` variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from introspector.app import create_app
from introspector.settings import IntrospectorSettings
from keygate_cli.settings import load_settings
from keygate_core.serving import serve

TICK_SECONDS = 0.005


class LoopLagProbe:
    """Samples how late the event loop wakes a sleeping task."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        """Sleep, measure the overshoot, repeat until cancelled."""
        # perf_counter, not loop.time(): uvloop's clock only moves in whole milliseconds.
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK_SECONDS)
            self.samples.append(max(0.0, time.perf_counter() - started - TICK_SECONDS))
            if len(self.samples) > 1_000_000:
                del self.samples[:500_000]

    def summary(self) -> dict[str, float]:
        """p50, p99 and max lag in milliseconds over the current window."""
        ordered = sorted(self.samples)
        if not ordered:
            return {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}

        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        return {
            "samples": len(ordered),
            "p50_ms": round(at(0.50), 3),
            "p99_ms": round(at(0.99), 3),
            "max_ms": round(ordered[-1] * 1000, 3),
        }


PROBE = web.AppKey("loop_lag_probe", LoopLagProbe)


async def _probe(app: web.Application) -> AsyncIterator[None]:
    app[PROBE] = LoopLagProbe()
    task = asyncio.create_task(app[PROBE].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def loop_lag(request: web.Request) -> web.Response:
    """The lag window so far; ``?reset=1`` clears it first."""
    probe = request.app[PROBE]
    if request.query.get("reset"):
        probe.samples.clear()
    return web.json_response(probe.summary())


def main() -> int:
    """Serve the probed introspector until SIGTERM."""
    settings = load_settings(IntrospectorSettings)
    app = create_app(settings)
    app.cleanup_ctx.append(_probe)
    app.router.add_get("/_bench/loop-lag", loop_lag)
    return serve(
        app,
        settings.host,
        settings.port,
        log_level=settings.log_level.value,
        drain_seconds=0.0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
