"""The serving commands: each keygate process, run until SIGTERM or Ctrl-C.

``introspector``, ``gateway`` (in ``KEYGATE_GATEWAY_WORKERS`` processes), ``admin-ui``, the demo
app (``demo-upstream``) and the whole demo (``demo``). Each loads its own settings, builds its
service with ``create_app(settings)`` and serves it through :mod:`keygate_core.serving`; a
configuration error surfaces before anything listens. A service's application is imported only
by the command that runs it, so an operator command loads none of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from aiohttp import web

from keygate_cli.settings import load_settings
from keygate_core.shared_settings import LogLevel


class _ServiceSettings(Protocol):
    """What serving needs from a service's settings."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def log_level(self) -> LogLevel: ...
    @property
    def shutdown_drain_seconds(self) -> float: ...


S = TypeVar("S", bound=_ServiceSettings)


def _serve(
    app_factory: Callable[[], web.Application],
    host: str,
    port: int,
    level: str,
    drain_seconds: float = 0.0,
) -> int:
    """Run an aiohttp service until SIGTERM/Ctrl-C (see keygate_core.serving)."""
    from keygate_core.serving import serve

    return serve(app_factory(), host, port, log_level=level, drain_seconds=drain_seconds)


def _serve_service(create_app: Callable[[S], web.Application], settings: S) -> int:
    """Serve ``create_app(settings)`` on the service's host and port with its log level."""
    return _serve(
        lambda: create_app(settings),
        settings.host,
        settings.port,
        settings.log_level.value,
        settings.shutdown_drain_seconds,
    )


def serve_introspector(args: argparse.Namespace) -> int:
    """``keygate introspector``: the token authority on KEYGATE_INTROSPECTOR_HOST/PORT."""
    from introspector.app import create_app
    from introspector.settings import IntrospectorSettings

    return _serve_service(create_app, load_settings(IntrospectorSettings))


def serve_gateway(args: argparse.Namespace) -> int:
    """``keygate gateway``: the reverse proxy, in as many worker processes as configured."""
    from gateway.settings import GatewaySettings
    from keygate_core.workers import serve_workers

    settings = load_settings(GatewaySettings)

    def app() -> web.Application:
        # The application (and prometheus_client with it) is imported only here: with several
        # workers, serve_workers first names their shared metrics directory, which
        # prometheus_client reads once, when imported (keygate_core.worker_metrics).
        from gateway.app import create_app

        return create_app(settings)

    return serve_workers(
        app,
        settings.host,
        settings.port,
        workers=settings.workers,
        log_level=settings.log_level.value,
        drain_seconds=settings.shutdown_drain_seconds,
        site=_relay_site,
    )


def _relay_site(runner: web.AppRunner, host: str, port: int, reuse_port: bool) -> web.BaseSite:
    """The gateway listens through its relay (imported late, like the application)."""
    from gateway.relay.server import RelaySite
    from keygate_core.serving import GRACE_SECONDS

    return RelaySite(runner, host, port, reuse_port=reuse_port, grace=GRACE_SECONDS, tune_gc=True)


def serve_admin_ui(args: argparse.Namespace) -> int:
    """``keygate admin-ui``: the sign-in and API-key pages on KEYGATE_ADMIN_UI_HOST/PORT."""
    from admin_ui.app import create_app
    from admin_ui.settings import AdminUISettings

    return _serve_service(create_app, load_settings(AdminUISettings))


def serve_demo_upstream(args: argparse.Namespace) -> int:
    """``keygate demo-upstream``: the demo app that shows the identity headers it receives."""
    from keygate_demo.upstream import create_app

    return _serve(create_app, args.host, args.port, "info")


def run_demo(args: argparse.Namespace) -> int:
    """``keygate demo``: the whole stack with demo data, until Ctrl-C (see keygate_demo.run)."""
    from keygate_demo.run import DemoOptions, run

    return run(
        DemoOptions(
            data_dir=Path(args.data_dir).resolve(),
            gateway_port=args.gateway_port,
            introspector_port=args.introspector_port,
            admin_ui_port=args.admin_ui_port,
            upstream_port=args.upstream_port,
            seed_external_database=args.seed_external_database,
        )
    )


#: The commands that run a process until it is stopped, by name.
SERVING: dict[str, Callable[[argparse.Namespace], int]] = {
    "introspector": serve_introspector,
    "gateway": serve_gateway,
    "admin-ui": serve_admin_ui,
    "demo-upstream": serve_demo_upstream,
    "demo": run_demo,
}
