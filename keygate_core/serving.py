"""Running a keygate service until SIGTERM, and stopping it without dropping work.

On SIGTERM (or Ctrl-C) a service:

1. starts failing ``readyz`` (503, ``"status": "draining"``) and keeps serving for
   ``KEYGATE_SHUTDOWN_DRAIN_SECONDS`` (default 0), so a load balancer or Kubernetes takes it out
   of rotation before it stops listening;
2. stops accepting connections and gives requests in flight up to :data:`GRACE_SECONDS` to
   finish (idle keep-alive connections are closed);
3. runs its cleanup — the introspector writes pending ``last_used_at`` updates, the gateway
   flushes usage counts — and exits 0.

A second signal during the drain ends the drain early; step 2 still happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from keygate_core.http_guard import GuardedSite
from keygate_core.logs import configure_logging

GRACE_SECONDS = 10.0

DRAINING = web.AppKey("draining", asyncio.Event)

#: The signals that stop a service gracefully.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: Makes the listening site: ``(runner, host, port, reuse_port)``. The gateway's is its relay.
SiteFactory = Callable[[web.AppRunner, str, int, bool], web.BaseSite]


def tcp_site(runner: web.AppRunner, host: str, port: int, reuse_port: bool) -> web.BaseSite:
    """The default listening site: aiohttp's, with keygate's connection limits
    (:mod:`keygate_core.http_guard`: 75 s keep-alive, 20 s to send a head, 16 KiB heads)."""
    return GuardedSite(runner, host, port, reuse_port=reuse_port)


log = logging.getLogger("keygate.serving")


def draining(app: web.Application) -> bool:
    """Whether ``app`` has been told to stop and is only finishing its work."""
    event = app.get(DRAINING)
    return event is not None and event.is_set()


def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    log_level: str,
    drain_seconds: float,
    reuse_port: bool = False,
    site: SiteFactory = tcp_site,
) -> int:
    """Serve ``app`` on ``host:port`` with uvloop and JSON logs until stopped; exit code 0.

    ``reuse_port`` (SO_REUSEPORT) lets several processes listen on the same port, the kernel
    spreading connections across them (see ``keygate_core.workers``).
    """
    import uvloop

    configure_logging(log_level)
    uvloop.install()
    asyncio.run(_serve(app, host, port, drain_seconds, reuse_port, site))
    return 0


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    drain_seconds: float,
    reuse_port: bool = False,
    site: SiteFactory = tcp_site,
) -> None:
    app[DRAINING] = asyncio.Event()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=GRACE_SECONDS)
    loop = asyncio.get_running_loop()
    try:
        # Inside the try: a startup that fails half-way still closes what it had opened.
        await runner.setup()
        await site(runner, host, port, reuse_port).start()
        signals = asyncio.Queue[int]()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, signals.put_nowait, signum)
        # A gateway worker starts with them blocked (keygate_core.workers): one that came
        # while it was starting is delivered now, to the handler.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        received = await signals.get()
        app[DRAINING].set()
        log.info(
            "stopping",
            extra={"signal": signal.Signals(received).name, "drain_seconds": drain_seconds},
        )
        if drain_seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_seconds):
                    await signals.get()
    finally:
        await runner.cleanup()
        # Once stopped, a repeated signal must not kill the process on its way out (the
        # default action), turning a clean exit into "killed by SIGTERM".
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
    log.info("stopped")
