"""Bounded load and the numbers taken from it: outcomes per request, percentiles, metrics.

Load here is a fixed number of concurrent clients on 127.0.0.1, each sending its next request as
soon as the last one is answered. Every request is recorded with its kind, start time (the event
loop's clock), duration and status, so a test can ask what happened between two moments.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import aiohttp

from tests.reliability.loop_lag import frozen_heap

#: A request to send: path and headers.
Request = tuple[str, dict[str, str]]
#: Client-side failure (no HTTP answer at all: reset, refused, or the client's own timeout).
NO_ANSWER = 0


@dataclass(frozen=True)
class Outcome:
    """One request as the client saw it."""

    kind: str
    started: float
    elapsed: float
    status: int
    retry_after: str | None = None
    reason: str | None = None

    @property
    def finished(self) -> float:
        return self.started + self.elapsed


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


async def send(
    http: aiohttp.ClientSession, base_url: str, kind: str, request: Request, give_up: float
) -> Outcome:
    """Send one GET and record what came back (status 0: no HTTP answer within ``give_up``
    seconds)."""
    loop = asyncio.get_running_loop()
    path, headers = request
    started = loop.time()
    try:
        async with http.get(
            base_url + path, headers=headers, timeout=aiohttp.ClientTimeout(total=give_up)
        ) as response:
            body = await response.read()
            reason = None
            if response.content_type == "application/problem+json":
                match = re.search(rb'"reason": "([a-z_]+)"', body)
                reason = match.group(1).decode() if match else None
            return Outcome(
                kind,
                started,
                loop.time() - started,
                response.status,
                response.headers.get("Retry-After"),
                reason,
            )
    except (aiohttp.ClientError, TimeoutError, OSError):
        return Outcome(kind, started, loop.time() - started, NO_ANSWER)


@dataclass
class Traffic:
    """Keeps ``concurrency`` requests in flight until stopped, cycling through request kinds.

    ``kinds`` maps a kind name to a function giving the next request of that kind; kinds take
    turns in order. Use as ``async with Traffic(...) as traffic:`` and read
    :attr:`outcomes` (or :meth:`during`) afterwards.
    """

    base_url: str
    kinds: dict[str, Callable[[], Request]]
    concurrency: int = 16
    timeout: float = 10.0
    #: Seconds each client waits after an answer (0: as fast as answered).
    pause: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _http: aiohttp.ClientSession | None = None
    _heap: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    async def __aenter__(self) -> Traffic:
        # The waits measured are the gateway's: not a full collection of this test process's
        # heap (pytest, Hypothesis, every module the suite imported), which once stalled the
        # loop for half a second in the middle of a run.
        self._heap.enter_context(frozen_heap())
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency, force_close=False)
        )
        turns = itertools.cycle(list(self.kinds))
        self._tasks = [asyncio.create_task(self._worker(turns)) for _ in range(self.concurrency)]
        return self

    async def _worker(self, turns: Iterable[str]) -> None:
        assert self._http is not None
        for kind in turns:
            if self._stop.is_set():
                return
            outcome = await send(self._http, self.base_url, kind, self.kinds[kind](), self.timeout)
            self.outcomes.append(outcome)
            if self.pause:
                await asyncio.sleep(self.pause)

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        with self._heap, contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks)
        assert self._http is not None
        await self._http.close()

    def during(self, start: float, end: float, kind: str | None = None) -> list[Outcome]:
        """Requests that started in [start, end), optionally of one kind."""
        return [
            o
            for o in self.outcomes
            if start <= o.started < end and (kind is None or o.kind == kind)
        ]

    def within(self, start: float, end: float, kind: str | None = None) -> list[Outcome]:
        """Requests that started at or after ``start`` and finished by ``end``."""
        return [o for o in self.during(start, end, kind) if o.finished <= end]

    async def wait_for(self, count: int, kind: str | None = None, within: float = 60) -> None:
        """Return once ``count`` requests (of ``kind``) have finished since this call."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + within
        while loop.time() < deadline:
            done = [o for o in self.outcomes if o.started >= start]
            if len([o for o in done if kind is None or o.kind == kind]) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} {kind or ''} requests did not finish in {within} s")


async def send_all(
    base_url: str, requests: Sequence[tuple[str, Request]], concurrency: int, give_up: float = 10.0
) -> list[Outcome]:
    """Send each (kind, request) once, ``concurrency`` at a time; outcomes in request order."""
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def one(kind: str, request: Request) -> Outcome:
            async with slots:
                return await send(http, base_url, kind, request, give_up)

        return list(await asyncio.gather(*(one(k, r) for k, r in requests)))


def recovery_seconds(
    outcomes: Sequence[Outcome], restored_at: float, ok: Callable[[Outcome], bool]
) -> float:
    """Seconds from ``restored_at`` until the end of the last failed request started after it
    (0 when none failed): from then on, every request succeeded."""
    failed = [o.finished for o in outcomes if o.started >= restored_at and not ok(o)]
    return max(failed, default=restored_at) - restored_at


def sample(metrics: str, name: str, **labels: str) -> float:
    """The sum of the Prometheus samples ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        base, _, label_text = metric.partition("{")
        if base != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total
