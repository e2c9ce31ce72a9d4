"""The shared fixtures that start keygate: registered for every test by ``tests/conftest.py``.

``start_introspector`` / ``introspector`` and ``start_stack`` / ``stack`` run keygate in this
process on free ports (:mod:`tests.harness.stack`); ``spawn`` runs ``keygate introspector`` or
``keygate gateway`` as a real process. They build on the per-test servers of ``tests/conftest.py``
(``database_url``, ``redis_url``, ``db``, ``hasher``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from introspector.app import create_app as create_introspector
from introspector.hashing import SecretHasher
from introspector.settings import IntrospectorSettings
from keygate_cli.settings import load_settings
from tests.harness.relay import RelayTestServer
from tests.harness.servers import free_port
from tests.harness.services import Service, base_environment
from tests.harness.stack import (
    Introspector,
    Stack,
    StartIntrospector,
    StartStack,
    gateway_env,
    introspector_env,
)
from tests.harness.upstream import create_upstream


@pytest.fixture
async def start_introspector(
    database_url: str,
    redis_url: str,
    db: asyncpg.Connection,
    hasher: SecretHasher,
    aiohttp_client: Any,
) -> StartIntrospector:
    """Start an introspector (optionally with extra KEYGATE_* settings) on a free port.

    ``aiohttp_client`` comes last so the app shuts down before its database is dropped.
    """

    async def start(**extra: str) -> Introspector:
        settings = load_settings(
            IntrospectorSettings, introspector_env(database_url, redis_url, **extra)
        )
        client = await aiohttp_client(create_introspector(settings))
        return Introspector(client=client, db=db, hasher=hasher)

    return start


@pytest.fixture
async def introspector(start_introspector: StartIntrospector) -> Introspector:
    """A community-edition introspector."""
    return await start_introspector()


@pytest.fixture
async def start_stack(
    start_introspector: StartIntrospector,
    redis_url: str,
    aiohttp_client: Any,
    aiohttp_server: Any,
) -> StartStack:
    """Start upstream + introspector + gateway; keyword arguments are extra gateway settings."""

    async def start(introspector_env_extra: dict[str, str] | None = None, **extra: str) -> Stack:
        introspector = await start_introspector(**(introspector_env_extra or {}))
        upstream_app, record = create_upstream()
        upstream_server = await aiohttp_server(upstream_app)
        upstream_url = str(upstream_server.make_url("")).rstrip("/")
        introspector_url = str(introspector.client.make_url("")).rstrip("/")
        settings = load_settings(
            GatewaySettings, gateway_env(introspector_url, upstream_url, redis_url, **extra)
        )
        gateway = await aiohttp_client(RelayTestServer(create_gateway(settings)))
        return Stack(gateway, introspector, record, upstream_url)

    return start


@pytest.fixture
async def stack(start_stack: StartStack) -> Stack:
    """The default stack (community edition, passthrough sessions)."""
    return await start_stack()


Spawn = Callable[..., Awaitable[Service]]
_PORT_VARIABLE = {"introspector": "KEYGATE_INTROSPECTOR_PORT", "gateway": "KEYGATE_GATEWAY_PORT"}


@pytest.fixture
async def spawn(database_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Spawn]:
    """Start a keygate process: ``await spawn("introspector", env)``; stopped after the test
    (before its database goes)."""
    started: list[Service] = []

    async def start(command: str, env: dict[str, str], port: int | None = None) -> Service:
        port = port or free_port()
        service = Service(
            command,
            {**base_environment(), **env, _PORT_VARIABLE[command]: str(port)},
            port,
            tmp_path / f"{command}-{len(started)}.log",
        )
        started.append(service)
        await service.start()
        return service

    yield start
    for service in started:
        await service.stop()
