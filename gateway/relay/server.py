"""The relay as a site of aiohttp's runner: it listens, aiohttp serves what it hands over.

``RelaySite`` takes the place of ``web.TCPSite`` for the gateway. The application behind it is
the whole gateway app (``gateway.app.create_app``): started and stopped by the runner as
always, serving ``/_keygate/*`` and every request the relay hands over, and providing the
pipeline the relay runs its own requests through.

Stopping (the runner's ``cleanup``): the listening socket closes, idle connections close, and
requests in flight get the runner's shutdown timeout to finish, before the application's own
cleanup closes the clients the pipeline uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from typing import NamedTuple

from aiohttp import web
from prometheus_client import Histogram

from gateway.access_log import AccessLog
from gateway.appkeys import ACCESS_LOG, METRICS, PIPELINE, SETTINGS
from gateway.metrics import GatewayMetrics
from gateway.pipeline.authz import AuthPolicy, RouteRule
from gateway.proxy import Pipeline
from gateway.relay.client import ClientConnection
from gateway.relay.lane import Lane
from gateway.relay.upstream import UpstreamPool
from gateway.relay.warm import CompiledWarm
from keygate_core.http_guard import GuardedHandler

#: How often (at most) client connections and upstream pools are looked at: for idle
#: keep-alive connections, unfinished request heads and requests waiting too long for a pool.
SWEEP_SECONDS = 5.0
#: The sweep also ends exchanges past their deadline (upstream or body timeout), so it runs at
#: least this many times per timeout: a 504 or 408 comes at most a tenth of it late.
TIMEOUT_STEPS = 10
_STATUS_CLASS = {n: f"{n}xx" for n in range(1, 6)}
#: Route and status-class pairs whose histogram child is kept (routes are the route table's
#: prefixes, so the bound is only a guard).
_DURATION_CHILDREN = 4096


class RoutePlan(NamedTuple):
    """What the relay does with the requests on one route rule (:meth:`Relay.plan`)."""

    rule: RouteRule
    #: The pool of the rule's upstream when its requests may take the lane
    #: (:meth:`~gateway.relay.lane.Lane.takes`), else ``None``.
    lane_pool: UpstreamPool | None
    #: Its requests that take the lane need nothing of the stages: anyone may take the route
    #: (``auth = "none"``); see :meth:`~gateway.relay.exchange.Exchange.start`.
    express: bool
    #: The compiled warm-token decision may decide its token requests that take the lane
    #: (:mod:`gateway.relay.warm`): the route takes credentials and has no scope to check.
    warm: bool


class Relay:
    """What the relay's connections share: the pipeline, the pools, the metrics."""

    def __init__(self, runner: web.AppRunner, loop: asyncio.AbstractEventLoop) -> None:
        app = runner.app
        server = runner.server
        assert server is not None
        self.loop = loop
        self.pipeline: Pipeline = app[PIPELINE]
        self.metrics: GatewayMetrics = app[METRICS]
        self.access: AccessLog = app[ACCESS_LOG]
        settings = app[SETTINGS]
        self.timeout: float = settings.upstream_timeout_seconds
        self.body_timeout: float = settings.body_timeout_seconds
        self.head_timeout: float = settings.header_timeout_seconds
        self.keepalive: float = settings.keepalive_timeout_seconds
        #: Plain requests' upstream heads, built from their field lines.
        self.lane = Lane(
            self.pipeline.strip_for_untrusted,
            self.pipeline.header_names,
            forward_bearer=settings.forward_bearer,
            trusted_proxies=tuple(settings.trusted_proxies),
        )
        #: The compiled warm-token decision, when the stages are the ones it stands for.
        self.warm = CompiledWarm.of(self.pipeline)
        self._pool_limit = settings.upstream_max_connections
        self._pool_queue: float = settings.upstream_queue_seconds
        self._every = min(
            SWEEP_SECONDS,
            self.head_timeout / 2,
            self.keepalive / 2,
            self._pool_queue / 2,
            self.timeout / TIMEOUT_STEPS,
            self.body_timeout / TIMEOUT_STEPS,
        )
        head, keepalive = self.head_timeout, self.keepalive

        def slow_path() -> GuardedHandler:
            return GuardedHandler(server, loop=loop, head_seconds=head, keepalive_seconds=keepalive)

        #: What a handed-over connection is given to: aiohttp's protocol, with the same limits.
        self.slow_path = slow_path
        self.connections: set[ClientConnection] = set()
        #: The duration histogram's child per route and status class.
        self._durations: dict[tuple[str, int], Histogram] = {}
        #: Route, status and seconds of each request answered since the last metrics flush.
        self.finished: list[tuple[str, int, float]] = []
        self.batch = self.metrics.batch
        self.batch.add_drain(self._observe_finished)
        self._all_closed: asyncio.Event | None = None
        self._pools: dict[str, UpstreamPool] = {}
        #: The pools by route rule upstream (an URL, or the name of one of keygate's services).
        self._rule_pools: dict[str, UpstreamPool] = {}
        #: Per route rule, by id (each plan keeps its rule, so that the id stays its own).
        self._plans: dict[int, RoutePlan] = {}
        self._sweeper: asyncio.TimerHandle | None = loop.call_later(self._every, self._sweep)

    def pool(self, base: str) -> UpstreamPool:
        """The connection pool of the upstream at ``base``."""
        pool = self._pools.get(base)
        if pool is None:
            pool = self._pools[base] = UpstreamPool(
                base, self.loop, limit=self._pool_limit, queue_seconds=self._pool_queue
            )
        return pool

    def pool_for(self, rule: RouteRule) -> UpstreamPool:
        """The connection pool of ``rule``'s upstream."""
        pool = self._rule_pools.get(rule.upstream)
        if pool is None:
            pool = self._rule_pools[rule.upstream] = self.pool(self.pipeline.base(rule))
        return pool

    def plan(self, rule: RouteRule) -> RoutePlan:
        """What the relay does with the requests on ``rule``, remembered per rule."""
        plan = self._plans.get(id(rule))
        if plan is None or plan.rule is not rule:
            lane = self.lane.takes(rule)
            pool = self.pool_for(rule) if lane else None
            express = lane and rule.auth is AuthPolicy.NONE
            warm = lane and not express and rule.scope is None and self.warm is not None
            plan = RoutePlan(rule, pool, express, warm)
            self._plans[id(rule)] = plan
        return plan

    def _observe_finished(self) -> None:
        """The durations of the requests in :attr:`finished`, to the metrics batch."""
        finished, self.finished = self.finished, []
        for route, status, seconds in finished:
            self.observe(route, status, seconds)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """``keygate_gateway_request_duration_seconds`` for one relayed request."""
        key = (route, status // 100)
        child = self._durations.get(key)
        if child is None:
            metrics = self.metrics
            status_class = _STATUS_CLASS.get(key[1], "5xx")
            child = metrics.labels(metrics.request_duration, route, status_class)
            if len(self._durations) < _DURATION_CHILDREN:
                self._durations[key] = child
        self.metrics.batch.observe(child, seconds)

    def forget(self, connection: ClientConnection) -> None:
        """``connection`` closed, or went to aiohttp."""
        self.connections.discard(connection)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    def _sweep(self) -> None:
        """Close idle keep-alive connections and those whose request head is overdue (timed
        from the first sweep that saw it unfinished, so reading a head costs no clock), and end
        the exchanges past their deadline."""
        now = self.loop.time()
        for connection in list(self.connections):
            exchange = connection.exchange
            if exchange is not None:
                if exchange.attached:
                    exchange.check_deadline(now)
                continue
            if connection.transport is None:
                continue
            if connection.waiting_for_head():
                if not connection.head_seen:
                    connection.head_seen = now
                elif now - connection.head_seen >= self.head_timeout:
                    connection.transport.close()
            elif now - connection.idle_since > self.keepalive:
                connection.transport.close()
        for pool in self._pools.values():
            pool.sweep(now)
        self._sweeper = self.loop.call_later(self._every, self._sweep)

    async def stop(self, grace: float) -> None:
        """Close idle connections now, the others once answered; cut what is left after
        ``grace`` seconds. The sweep goes on meanwhile: requests in flight keep their
        deadlines."""
        self._all_closed = asyncio.Event()
        for connection in list(self.connections):
            connection.close_when_idle()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._all_closed.wait()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self.connections):
            connection.abort()
        for pool in self._pools.values():
            pool.close()


class RelaySite(web.BaseSite):
    """The gateway's listening socket, served by the relay (instead of ``web.TCPSite``)."""

    __slots__ = ("_grace", "_host", "_port", "_relay", "_reuse_port", "_sock", "_tune_gc")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str | None = None,
        port: int = 0,
        *,
        reuse_port: bool = False,
        sock: socket.socket | None = None,
        grace: float = 10.0,
        tune_gc: bool = False,
    ) -> None:
        super().__init__(runner)
        self._grace = grace
        self._tune_gc = tune_gc
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._sock = sock
        self._relay: Relay | None = None

    @property
    def name(self) -> str:
        """Where the site listens, for aiohttp's log lines."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Listen.

        With ``tune_gc`` (a gateway process of its own) what startup built is frozen out of
        the garbage collector's passes, which then only walk what requests made. (Collections
        were 6 % of a busy relay's CPU. Collecting the youngest generation less often saved
        more CPU but paused for milliseconds: p99 at concurrency 1 went from 0.5 to 6 ms.)
        """
        if self._tune_gc:
            gc.freeze()
        await super().start()
        loop = asyncio.get_running_loop()
        runner = self._runner
        assert isinstance(runner, web.AppRunner)
        relay = self._relay = Relay(runner, loop)
        factory = lambda: ClientConnection(relay)  # noqa: E731
        if self._sock is not None:
            self._server = await loop.create_server(factory, sock=self._sock)
        else:
            self._server = await loop.create_server(
                factory, self._host, self._port, reuse_port=self._reuse_port or None
            )

    async def stop(self) -> None:
        """Stop listening and let requests in flight finish (see the module docstring)."""
        await super().stop()
        if self._relay is not None:
            await self._relay.stop(self._grace)
