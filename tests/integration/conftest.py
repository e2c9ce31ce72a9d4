"""Fixtures several integration test modules share.

``enterprise`` and ``cast`` give the permission tests a person in every role
(:mod:`tests.harness.cast`); ``start_sessions``, ``sessions`` and ``refused_url`` run the gateway
with the ``upstream`` session authenticator (:mod:`tests.harness.upstream_sessions`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.cast import Cast, make_cast
from tests.harness.stack import Introspector, StartIntrospector, StartStack
from tests.harness.upstream import create_upstream
from tests.harness.upstream_sessions import ROUTES, Sessions, StartSessions


@pytest.fixture
async def enterprise(start_introspector: StartIntrospector) -> Introspector:
    """An enterprise-edition introspector."""
    return await start_introspector(KEYGATE_EDITION="enterprise")


@pytest.fixture
async def cast(enterprise: Introspector) -> Cast:
    """The cast, created in the enterprise introspector's database."""
    return await make_cast(enterprise)


@pytest.fixture
async def start_sessions(
    start_stack: StartStack, aiohttp_server: Any, tmp_path: Path
) -> StartSessions:
    """Start the session-check app first (its URL is a gateway setting), then the stack.

    ``check_url`` overrides the check URL (e.g. one that refuses connections); keyword
    arguments are extra gateway settings.
    """

    async def start(check_url: str | None = None, **extra: str) -> Sessions:
        checks_app, checks = create_upstream()
        if check_url is None:
            server = await aiohttp_server(checks_app)
            check_url = str(server.make_url("/session"))
        routes = tmp_path / "routes.toml"
        routes.write_text(ROUTES, encoding="utf-8")
        stack = await start_stack(
            KEYGATE_SESSION_AUTHENTICATOR="upstream",
            KEYGATE_SESSION_CHECK_URL=check_url,
            KEYGATE_ROUTES_FILE=str(routes),
            **extra,
        )
        return Sessions(stack, checks)

    return start


@pytest.fixture
async def sessions(start_sessions: StartSessions) -> Sessions:
    """The default: a reachable session check, answers cached for 5 s."""
    return await start_sessions()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL whose port is bound but not listening: every connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/session"
