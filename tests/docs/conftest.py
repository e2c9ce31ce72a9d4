"""A live keygate for the documentation tests: gateway, introspector and app on real ports.

The reference pages' samples, error tables and the OpenAPI document are all checked against
this stack, so a page that no longer describes the running code fails the suite.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from introspector.models import Role, User, Workspace
from keygate_cli.settings import load_settings
from tests.integration import conftest as integration
from tests.integration.conftest import Stack, StartStack, gateway_env

# The integration suite's fixtures, made available to the documentation tests.
start_introspector = integration.start_introspector
start_stack = integration.start_stack

#: The e-mail the reference pages use for "you".
READER_EMAIL = "you@example.com"
BIN = Path(sys.executable).parent


@dataclass
class Live:
    """A running stack with one person, a workspace they administer and a token of theirs."""

    stack: Stack
    user: User
    workspace: Workspace
    token: str
    database_url: str

    @property
    def gateway_url(self) -> str:
        """Scheme, host and port of the gateway, e.g. ``http://127.0.0.1:41234``."""
        return str(self.stack.gateway.make_url("")).rstrip("/")

    @property
    def introspector_url(self) -> str:
        """Scheme, host and port of the introspector."""
        return str(self.stack.introspector.client.make_url("")).rstrip("/")

    def base_environment(self) -> dict[str, str]:
        """This process's environment without any keygate variable, the venv first on PATH."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def operator_environment(self) -> dict[str, str]:
        """What an operator running the ``keygate`` CLI has: the database URL."""
        return {**self.base_environment(), "KEYGATE_DATABASE_URL": self.database_url}


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
