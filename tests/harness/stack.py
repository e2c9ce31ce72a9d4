"""The in-process keygate stack the tests drive: its settings, and clients that speak to it.

``Introspector`` is a live introspector plus helpers that send the gateway's trusted headers;
``Stack`` adds a gateway and the recording upstream it protects. The fixtures that start them
(``start_introspector``, ``start_stack``, …) are in :mod:`tests.harness.fixtures`; the
environments here also serve the tests that run keygate as real processes.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from introspector import tokens, users, workspaces
from introspector.hashing import SecretHasher
from introspector.models import Actor, Role, User, Workspace
from introspector.settings import Edition
from tests.harness.upstream import Upstream

INTERNAL_SECRET = "test-internal-secret-0123456789abcdef"
API = "/api/platform/internal"
#: A timeout a healthy dependency does not reach even on a busy test machine, for the calls of
#: a test that is about something else: the harness's own database timeout (1 s a statement) is
#: short so that fault tests run fast, and a slow, healthy call past it would turn into another
#: outcome (a 503) than the one the test checks. A test gateway waits this long for the
#: introspector unless told otherwise (a test about a slow introspector sets its own timeout):
#: with 1 s, a token's first check in a CI run as busy as four test workers on two cores once
#: failed twice (no answer in time, by all its log showed), and a test about usage counts got
#: two 503s instead.
PATIENT_MS = "10000"


def process_env(
    database_url: str, redis_url: str, introspector_port: int, upstream_url: str, **extra: str
) -> dict[str, str]:
    """The environment of ``keygate`` processes in a test: ours without any ``KEYGATE_*``, the
    test's servers, an introspector on ``introspector_port`` and ``extra`` settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    return {
        **base,
        "KEYGATE_DATABASE_URL": database_url,
        "KEYGATE_REDIS_URL": redis_url,
        "KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET,
        "KEYGATE_INTROSPECTOR_PORT": str(introspector_port),
        "KEYGATE_INTROSPECTOR_URL": f"http://127.0.0.1:{introspector_port}",
        "KEYGATE_UPSTREAM_URL": upstream_url,
        "KEYGATE_LOG_LEVEL": "warning",
        **extra,
    }


def introspector_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """Settings for a test introspector: the test's servers, fast background loops."""
    return {
        "KEYGATE_DATABASE_URL": database_url,
        "KEYGATE_REDIS_URL": redis_url,
        "KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET,
        "KEYGATE_LAST_USED_FLUSH_SECONDS": "0.1",
        "KEYGATE_OUTBOX_POLL_SECONDS": "0.1",
        "KEYGATE_REDIS_TIMEOUT_MS": "200",
        "KEYGATE_DATABASE_TIMEOUT_MS": "1000",
        **extra,
    }


@dataclass
class Introspector:
    """A running introspector plus helpers that send the gateway's trusted headers."""

    client: TestClient[Any, Any]
    db: asyncpg.Connection
    hasher: SecretHasher

    def headers(
        self, user: User | None = None, *, token_id: str | None = None, secret: bool = True
    ) -> dict[str, str]:
        headers = {"X-Keygate-Internal-Secret": INTERNAL_SECRET} if secret else {}
        if user is not None:
            headers["X-Keygate-User-Id"] = str(user.id)
            headers["X-Keygate-Auth-Method"] = "token" if token_id else "session"
            if token_id:
                headers["X-Keygate-Token-Id"] = token_id
        return headers

    async def user(self, email: str, *, admin: bool = False) -> User:
        return await users.create_user(
            self.db, self.hasher, Actor.operator(), email=email, is_admin=admin
        )

    async def workspace(self, name: str, members: dict[User, Role]) -> Workspace:
        ws = await workspaces.create_workspace(self.db, Actor.operator(), name=name)
        for member, role in members.items():
            await workspaces.add_member(self.db, Actor.operator(), ws, member, role)
        return ws

    async def legacy_token(self, owner: User, name: str = "legacy") -> str:
        """A token as made before fast verifiers existed (argon2 hash only): checking it needs
        argon2, behind the failed-attempt counters, until its first success adds a verifier."""
        created = await tokens.create_token(
            self.db,
            self.hasher,
            Actor.operator(),
            owner=owner,
            name=name,
            edition=Edition.COMMUNITY,
        )
        return created.plaintext

    async def create(
        self, user: User, *, token_id: str | None = None, **body: Any
    ) -> aiohttp.ClientResponse:
        body.setdefault("name", "test token")
        return await self.client.post(
            f"{API}/api-tokens", json=body, headers=self.headers(user, token_id=token_id)
        )

    async def create_ok(self, user: User, **body: Any) -> dict[str, Any]:
        response = await self.create(user, **body)
        assert response.status == 201, await response.text()
        created: dict[str, Any] = await response.json()
        return created

    async def list(self, user: User, query: str = "") -> aiohttp.ClientResponse:
        return await self.client.get(f"{API}/api-tokens{query}", headers=self.headers(user))

    async def revoke(
        self, user: User, token_id: str, *, via_token: str | None = None
    ) -> aiohttp.ClientResponse:
        return await self.client.delete(
            f"{API}/api-tokens/{token_id}", headers=self.headers(user, token_id=via_token)
        )

    async def introspect(self, token: str, address: str | None = None) -> aiohttp.ClientResponse:
        headers = self.headers()
        if address:
            headers["X-Keygate-Client-Address"] = address
        return await self.client.post("/introspect", data={"token": token}, headers=headers)

    async def introspect_json(self, token: str, address: str | None = None) -> dict[str, Any]:
        response = await self.introspect(token, address)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def metrics(self) -> str:
        response = await self.client.get("/metrics")
        assert response.status == 200
        return await response.text()


StartIntrospector = Callable[..., Awaitable[Introspector]]


@dataclass
class Stack:
    """A gateway, the introspector behind it, and the upstream app it protects."""

    gateway: TestClient[Any, Any]
    introspector: Introspector
    upstream: Upstream
    upstream_url: str

    async def token_for(self, user: User, **body: Any) -> str:
        """A fresh token for ``user`` created through the introspector."""
        created = await self.introspector.create_ok(user, **body)
        token: str = created["token"]
        return token

    async def metrics(self) -> str:
        response = await self.gateway.get("/_keygate/metrics")
        assert response.status == 200
        return await response.text()


def gateway_env(
    introspector_url: str, upstream_url: str, redis_url: str, **extra: str
) -> dict[str, str]:
    """Settings for a test gateway."""
    return {
        "KEYGATE_UPSTREAM_URL": upstream_url,
        "KEYGATE_INTROSPECTOR_URL": introspector_url,
        "KEYGATE_REDIS_URL": redis_url,
        "KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET,
        "KEYGATE_REDIS_TIMEOUT_MS": "200",
        "KEYGATE_INTROSPECTOR_TIMEOUT_MS": PATIENT_MS,
        **extra,
    }


StartStack = Callable[..., Awaitable[Stack]]
