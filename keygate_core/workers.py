"""Several gateway processes sharing one port (``KEYGATE_GATEWAY_WORKERS``).

One Python process runs one event loop on one core, so one gateway process cannot use a second
core however busy it is. With more than one worker the gateway forks that many processes before
any event loop exists. Each builds its own app — its own L1 cache, connection pools and
revocation listener — and listens on the same ``host:port`` with ``SO_REUSEPORT``, so the
kernel spreads incoming connections across them. Their metrics go to one directory the parent
makes for the run, so a scrape of any worker reports them all (``keygate_core.worker_metrics``).

The parent only supervises. It passes SIGTERM and SIGINT on to every worker, waits while they
shut down gracefully (see ``keygate_core.serving``), and exits with the worst exit code. A worker
that dies on its own stops the others too: better a restart by the orchestrator than a gateway
that silently runs at part of its capacity.

A stop signal may come while a worker is still starting: the gateway answers as soon as one
worker listens, and the others may be a moment behind. The parent blocks SIGTERM and SIGINT
before it forks, so every worker starts with them blocked and receives one only once its
handler is in place (``keygate_core.serving`` unblocks them then): it stops as gracefully as a
worker that was serving, rather than being killed by the signal's default action.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from types import FrameType

from aiohttp import web

from keygate_core.logs import configure_logging
from keygate_core.serving import STOP_SIGNALS, SiteFactory, serve, tcp_site
from keygate_core.worker_metrics import shared_metrics_dir, worker_exited

log = logging.getLogger("keygate.keygate_core.workers")


def serve_workers(
    app_factory: Callable[[], web.Application],
    host: str,
    port: int,
    *,
    workers: int,
    log_level: str,
    drain_seconds: float,
    site: SiteFactory = tcp_site,
) -> int:
    """Serve ``app_factory()`` in ``workers`` processes on ``host:port``; the exit code.

    With one worker this is plain :func:`~keygate_core.serving.serve` in this process. Otherwise
    the workers' shared metrics directory is set up first — so ``app_factory`` must be what
    imports the application, and with it prometheus_client — and the factory is called once
    here, so a configuration error stops the gateway before anything is forked.
    """
    if workers <= 1:
        app = app_factory()
        return serve(app, host, port, log_level=log_level, drain_seconds=drain_seconds, site=site)
    with shared_metrics_dir():
        return _fork_workers(app_factory, host, port, workers, log_level, drain_seconds, site)


def _fork_workers(
    app_factory: Callable[[], web.Application],
    host: str,
    port: int,
    workers: int,
    log_level: str,
    drain_seconds: float,
    site: SiteFactory,
) -> int:
    """Check the configuration, fork ``workers`` workers and supervise them; the exit code."""
    app_factory()
    configure_logging(log_level)
    # Port 0 means "any free port": pick it once, here, and hold it in the SO_REUSEPORT group
    # so that every worker listens on the same one.
    holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, port))
    port = holder.getsockname()[1]
    # Held until the parent's handler and each worker's are installed (see the module's notes).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            holder.close()
            os._exit(_worker(app_factory, host, port, log_level, drain_seconds, site))
        children.append(pid)
    log.info("gateway workers started", extra={"workers": workers, "port": port})
    try:
        return _supervise(children)
    finally:
        holder.close()


def _worker(
    app_factory: Callable[[], web.Application],
    host: str,
    port: int,
    log_level: str,
    drain_seconds: float,
    site: SiteFactory,
) -> int:
    try:
        return serve(
            app_factory(),
            host,
            port,
            log_level=log_level,
            drain_seconds=drain_seconds,
            reuse_port=True,
            site=site,
        )
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        return 1


def _supervise(children: list[int]) -> int:
    """Wait for every worker; pass stop signals on; stop all when one dies on its own."""
    alive = set(children)
    stopping = False

    def pass_on(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, pass_on)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    worst = 0
    while alive:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        alive.discard(pid)
        worker_exited(pid)
        code = os.waitstatus_to_exitcode(status)
        worst = max(worst, code if code >= 0 else 128 - code)
        if not stopping:
            stopping = True
            log.error("gateway worker exited on its own; stopping the others", extra={"code": code})
            worst = max(worst, 1)
            pass_on(signal.SIGTERM, None)
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    return worst
