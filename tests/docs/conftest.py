"""A live keygate for the documentation tests: gateway, introspector and app on real ports.

The reference pages' samples, error tables and the OpenAPI document are all checked against
this stack, so a page that no longer describes the running code fails the suite.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from introspector.models import Role
from keygate_cli.settings import load_settings
from tests.docs.live import READER_EMAIL, Live
from tests.harness.stack import StartStack, gateway_env


@pytest.fixture
async def live(start_stack: StartStack, database_url: str) -> Live:
    """The default stack, with ``you@example.com`` (admin of workspace Acme) and a token."""
    stack = await start_stack()
    user = await stack.introspector.user(READER_EMAIL)
    workspace = await stack.introspector.workspace("Acme", {user: Role.ADMIN})
    token = await stack.token_for(user, name="docs")
    return Live(stack, user, workspace, token, database_url)


@pytest.fixture
def start_gateway(redis_url: str, aiohttp_client: Any) -> Any:
    """Start one more gateway in front of ``introspector_url`` with extra KEYGATE_* settings."""

    async def start(introspector_url: str, upstream_url: str, **extra: str) -> TestClient[Any, Any]:
        settings = load_settings(
            GatewaySettings, gateway_env(introspector_url, upstream_url, redis_url, **extra)
        )
        client: TestClient[Any, Any] = await aiohttp_client(create_gateway(settings))
        return client

    return start
