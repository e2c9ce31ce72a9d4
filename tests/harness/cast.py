"""The permission tests' cast: a person in every role, and the calls they make.

The ``enterprise`` and ``cast`` fixtures (``tests/integration/conftest.py``) create them in an
enterprise-edition introspector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from introspector.models import Role, User, Workspace
from tests.harness.stack import API, Introspector

ROLES = ("org_admin", "ws_admin", "ws_admin2", "member", "member2", "outsider", "other_admin")
ACME = {
    "ws_admin": Role.ADMIN,
    "ws_admin2": Role.ADMIN,
    "member": Role.MEMBER,
    "member2": Role.MEMBER,
}


@dataclass
class Cast:
    """Everyone the matrix needs, looked up by role name.

    ``ACME`` gives the roles in ``ws``; other_admin runs another workspace; org_admin (the only
    organisation admin) and outsider belong to none.
    """

    people: dict[str, User]
    ws: Workspace

    def __getitem__(self, role: str) -> User:
        return self.people[role]


async def make_cast(ki: Introspector) -> Cast:
    """Create the users and workspaces; no tokens yet."""
    people = {r: await ki.user(f"{r}@example.com", admin=r == "org_admin") for r in ROLES}
    ws = await ki.workspace("Acme", {people[r]: role for r, role in ACME.items()})
    await ki.workspace("Other", {people["other_admin"]: Role.ADMIN})
    return Cast(people, ws)


def scope_body(scope: str, ws: Workspace) -> dict[str, Any]:
    """A create body for ``scope``; a WORKSPACE token is bound to ``ws``."""
    body: dict[str, Any] = {"name": f"{scope.lower()} token", "scope": scope}
    if scope == "WORKSPACE":
        body["workspaceId"] = str(ws.id)
    return body


async def token_of(ki: Introspector, user: User, scope: str | None, ws: Workspace) -> str | None:
    """The id of a new ``scope`` token of ``user`` (created by session); None for no scope."""
    if scope is None:
        return None
    token_id: str = (await ki.create_ok(user, **scope_body(scope, ws)))["id"]
    return token_id


async def problem(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """The problem+json body of a refusal with ``status``."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    return body


async def get(
    ki: Introspector, path: str, user: User, *, via: str | None = None
) -> aiohttp.ClientResponse:
    """GET an API path as ``user``'s session, or through ``user``'s token ``via``."""
    return await ki.client.get(f"{API}{path}", headers=ki.headers(user, token_id=via))


async def token_rows(ki: Introspector) -> int:
    """How many tokens the introspector's database holds."""
    count: int = await ki.db.fetchval("SELECT count(*) FROM api_token")
    return count


async def is_active(ki: Introspector, token: str) -> bool:
    """Whether introspection calls ``token`` active."""
    return bool((await ki.introspect_json(token))["active"])
