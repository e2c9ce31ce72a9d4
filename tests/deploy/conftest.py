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
        create_introspector(
            load_settings(
                IntrospectorSettings,
                {
                    **shared,
                    "KEYGATE_DATABASE_URL": database_url,
                    # One wrong secret per token id is enough to show the throttling counter.
                    "KEYGATE_FAILED_VERIFY_LIMIT_PER_TOKEN": "1",
                },
            )
        )
    )
    introspector_url = str(introspector.make_url("")).rstrip("/")
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
                    "KEYGATE_ADMIN_UI_URL": str(admin_ui.make_url("")).rstrip("/"),
                    "KEYGATE_UPSTREAM_URL": str(upstream.make_url("")).rstrip("/"),
                },
            )
        )
    )
    owner = await users.create_user(db, hasher, Actor.operator(), email="ops@example.com")
    created = [
        await tokens.create_token(
            db, hasher, Actor.operator(), owner=owner, name=name, edition=Edition.COMMUNITY
        )
        for name in ("deploy", "cold")
    ]
    return LiveServices(
        urls={
            "introspector": introspector_url,
            "gateway": str(gateway.make_url("")).rstrip("/"),
            "admin-ui": str(admin_ui.make_url("")).rstrip("/"),
        },
        token=created[0].plaintext,
        cold_token=created[1].plaintext,
        stop_introspector=introspector.close,
    )
