"""keygate's three services as real aiohttp servers, for the probe and metrics checks.

Each is built by its own ``create_app(settings)`` on a free port, against the suite's real
Postgres and Redis, with a recording app behind the gateway.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from admin_ui.app import create_app as create_admin_ui
from admin_ui.settings import AdminUISettings
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from introspector import tokens, users
from introspector.app import create_app as create_introspector
from introspector.hashing import SecretHasher
from introspector.models import Actor
from introspector.settings import Edition, IntrospectorSettings
from keygate_cli.settings import load_settings
from tests.harness.live_services import LiveServices
from tests.harness.upstream import create_upstream

INTERNAL_SECRET = "deploy-test-internal-secret-0123456789"


@pytest.fixture
async def live_services(
    database_url: str,
    redis_url: str,
    db: asyncpg.Connection,
    hasher: SecretHasher,
    aiohttp_server: Any,
) -> LiveServices:
    """Introspector, gateway and admin UI serving; ``aiohttp_server`` last, so they stop before
    the database is dropped."""
    shared = {"KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET, "KEYGATE_REDIS_URL": redis_url}
    introspector = await aiohttp_server(
        create_introspector(_introspector_settings(shared, database_url))
    )
    introspector_url = _base_url(introspector)
    admin_ui = await aiohttp_server(
        create_admin_ui(
            load_settings(
                AdminUISettings,
                {
                    "KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET,
                    "KEYGATE_INTROSPECTOR_URL": introspector_url,
                },
            )
        )
    )
    upstream_app, _ = create_upstream()
    upstream = await aiohttp_server(upstream_app)
    gateway = await aiohttp_server(
        create_gateway(
            load_settings(
                GatewaySettings,
                {
                    **shared,
                    "KEYGATE_INTROSPECTOR_URL": introspector_url,
                    "KEYGATE_ADMIN_UI_URL": _base_url(admin_ui),
                    "KEYGATE_UPSTREAM_URL": _base_url(upstream),
                },
            )
        )
    )
    token, cold_token = await _two_tokens(db, hasher)
    return LiveServices(
        urls={
            "introspector": introspector_url,
            "gateway": _base_url(gateway),
            "admin-ui": _base_url(admin_ui),
        },
        token=token,
        cold_token=cold_token,
        stop_introspector=introspector.close,
    )


def _introspector_settings(shared: dict[str, str], database_url: str) -> IntrospectorSettings:
    return load_settings(
        IntrospectorSettings,
        {
            **shared,
            "KEYGATE_DATABASE_URL": database_url,
            # One wrong secret per token id is enough to show the throttling counter.
            "KEYGATE_FAILED_VERIFY_LIMIT_PER_TOKEN": "1",
        },
    )


def _base_url(server: Any) -> str:
    return str(server.make_url("")).rstrip("/")


async def _two_tokens(db: asyncpg.Connection, hasher: SecretHasher) -> tuple[str, str]:
    """An operator-made user's tokens "deploy" and "cold", as plaintexts."""
    owner = await users.create_user(db, hasher, Actor.operator(), email="ops@example.com")
    created = [
        await tokens.create_token(
            db, hasher, Actor.operator(), owner=owner, name=name, edition=Edition.COMMUNITY
        )
        for name in ("deploy", "cold")
    ]
    return created[0].plaintext, created[1].plaintext
