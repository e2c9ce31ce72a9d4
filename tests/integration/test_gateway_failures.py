"""The gateway's own failures: startup closes every client it opened.

Every trigger is a real condition (an operator's odd setting, a misbehaving upstream), never a
mock: the upstreams are real servers, Redis is the test's real server, closed ports are real.
"""

from __future__ import annotations

import socket

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.appkeys import HTTP, INTERNAL_HTTP, LISTENER
from gateway.settings import GatewaySettings
from keygate_cli.settings import load_settings
from tests.integration.conftest import gateway_env


def _closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _settings(redis_url: str, upstream_url: str) -> GatewaySettings:
    """A gateway on the test Redis whose introspector is a closed port (never asked here)."""
    introspector_url = f"http://127.0.0.1:{_closed_port()}"
    return load_settings(
        GatewaySettings,
        gateway_env(
            introspector_url, upstream_url, redis_url, KEYGATE_SESSION_AUTHENTICATOR="local"
        ),
    )


async def test_startup_failing_halfway_closes_the_clients_it_opened(redis_url: str) -> None:
    """A startup that fails after the HTTP pools opened closes them in the runner's cleanup."""
    # A real operator mistake the settings accept (only the scheme is checked): redis-py takes
    # the URL's query as client options, and the limiter's script cannot be encoded in a codec
    # that does not exist. The Redis pool and both HTTP sessions are open by then.
    settings = _settings(
        f"{redis_url}?encoding=no-such-codec", f"http://127.0.0.1:{_closed_port()}"
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    try:
        with pytest.raises(LookupError, match="no-such-codec"):
            await runner.setup()
    finally:
        await runner.cleanup()
    assert app[HTTP].closed and app[INTERNAL_HTTP].closed
    assert LISTENER not in app  # the background tasks never started
