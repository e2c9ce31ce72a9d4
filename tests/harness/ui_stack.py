"""keygate's services as real processes, seen the way a browser test sees them.

``UIStack`` is what the ``ui_stack`` fixture (``tests/browser/conftest.py``) starts: introspector,
admin UI and gateway as ``keygate`` processes, reached through the gateway, with two seeded people.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg

from introspector import tokens
from tests.harness.stack import API
from tests.harness.upstream import Upstream

KEYGATE = str(Path(sys.executable).parent / "keygate")


@dataclass(frozen=True)
class Person:
    """A seeded user and the password they log in with."""

    id: str
    email: str
    password: str


@dataclass
class UIStack:
    """The running services, reached through the gateway as a browser would."""

    gateway_url: str
    env: dict[str, str]
    database_url: str
    upstream: Upstream
    admin: Person
    member: Person

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run ``keygate *args`` against the stack's database; its stdout, stripped."""
        result = subprocess.run(
            [KEYGATE, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise AssertionError(f"`keygate {' '.join(args)}` failed: {result.stderr.strip()}")
        return result.stdout.strip()

    async def tokens_of(self, person: Person) -> list[dict[str, Any]]:
        """``person``'s tokens straight from the database (as the API shows them), not the UI."""
        conn = await asyncpg.connect(self.database_url)
        try:
            records = await tokens.list_tokens(conn, user_id=UUID(person.id))
        finally:
            await conn.close()
        now = datetime.now(UTC)
        return [record.to_json(now) for record in records]

    async def whoami(self, token: str) -> tuple[int, dict[str, Any]]:
        """``GET whoami`` through the gateway with ``token`` as a bearer token."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{self.gateway_url}{API}/whoami", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            body = await response.json(content_type=None) if await response.read() else {}
            return response.status, body
