"""The management API's permission matrix, proved over real HTTP against a live introspector."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from introspector.models import Role, User, Workspace
from tests.harness.stack import API, Introspector, StartIntrospector

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


@pytest.fixture
async def enterprise(start_introspector: StartIntrospector) -> Introspector:
    """An enterprise-edition introspector."""
    return await start_introspector(KEYGATE_EDITION="enterprise")


@pytest.fixture
async def cast(enterprise: Introspector) -> Cast:
    """The cast, created in the enterprise introspector's database."""
    return await make_cast(enterprise)


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
    count: int = await ki.db.fetchval("SELECT count(*) FROM api_token")
    return count


async def is_active(ki: Introspector, token: str) -> bool:
    return bool((await ki.introspect_json(token))["active"])


# --- 1. other people's tokens ---------------------------------------------------------------
async def test_a_cannot_list_or_revoke_b_tokens(introspector: Introspector) -> None:
    """B's token is absent from A's list, A's revoke answers 404 (not 403), and it stays active."""
    alice = await introspector.user("alice@example.com")
    bob = await introspector.user("bob@example.com")
    mine = await introspector.create_ok(alice)
    theirs = await introspector.create_ok(bob)
    listed = await (await introspector.list(alice)).json()
    assert [t["id"] for t in listed["items"]] == [mine["id"]]
    refused = await problem(await introspector.revoke(alice, theirs["id"]), 404)
    assert refused["reason"] == "not_found"
    assert await is_active(introspector, theirs["token"])


# --- 2. editions ----------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["WORKSPACE", "ORGANIZATION"])
@pytest.mark.parametrize("edition", ["community", "enterprise"])
async def test_broad_scopes_need_the_enterprise_edition(
    start_introspector: StartIntrospector, edition: str, scope: str
) -> None:
    """Community refuses an admin's broad token (403 edition_restricted); enterprise issues it."""
    ki = await start_introspector(KEYGATE_EDITION=edition)
    boss = await ki.user("boss@example.com", admin=True)
    ws = await ki.workspace("Acme", {boss: Role.ADMIN})
    response = await ki.create(boss, **scope_body(scope, ws))
    if edition == "enterprise":
        assert response.status == 201, await response.text()
        assert (await response.json())["scope"] == scope
        return
    body = await problem(response, 403)
    assert body["reason"] == "edition_restricted"
    assert body["field"] == "scope"
    assert "enterprise" in body["detail"]
    assert await token_rows(ki) == 0


# --- 3. who may create which scope (enterprise) ---------------------------------------------
CREATE_MATRIX = [
    ("member", "PERSONAL", 201, None),
    ("member", "WORKSPACE", 403, "scope"),
    ("member", "ORGANIZATION", 403, "scope"),
    ("ws_admin", "PERSONAL", 201, None),
    ("ws_admin", "WORKSPACE", 201, None),
    ("ws_admin", "ORGANIZATION", 403, "scope"),
    ("org_admin", "PERSONAL", 201, None),
    ("org_admin", "WORKSPACE", 404, "workspaceId"),
    ("org_admin", "ORGANIZATION", 201, None),
    ("outsider", "WORKSPACE", 404, "workspaceId"),
]


@pytest.mark.parametrize(
    ("role", "scope", "status", "field"),
    [pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2]}") for case in CREATE_MATRIX],
)
async def test_create_scope_by_role(
    enterprise: Introspector, cast: Cast, role: str, scope: str, status: int, field: str | None
) -> None:
    """Each role gets exactly the scopes it may hold; a refusal names the field, writes no row."""
    response = await enterprise.create(cast[role], **scope_body(scope, cast.ws))
    if status == 201:
        assert response.status == 201, await response.text()
        assert (await response.json())["scope"] == scope
        assert await token_rows(enterprise) == 1
        return
    assert (await problem(response, status))["field"] == field
    assert await token_rows(enterprise) == 0


# --- 4. who may revoke whose token ----------------------------------------------------------
REVOKE_MATRIX = [
    # (revoker, via token scope or None for a session, owner, owner's token scope, status)
    ("org_admin", None, "member", "PERSONAL", 204),
    ("org_admin", None, "ws_admin", "WORKSPACE", 204),
    ("org_admin", "ORGANIZATION", "member", "PERSONAL", 204),
    ("org_admin", "PERSONAL", "member", "PERSONAL", 404),
    ("ws_admin", None, "ws_admin2", "WORKSPACE", 204),
    ("ws_admin", "WORKSPACE", "ws_admin2", "WORKSPACE", 204),
    ("ws_admin", "PERSONAL", "ws_admin2", "WORKSPACE", 404),
    ("ws_admin", None, "ws_admin2", "PERSONAL", 404),
    ("ws_admin", None, "member", "PERSONAL", 404),
    ("other_admin", None, "ws_admin", "WORKSPACE", 404),
    ("member", None, "member2", "PERSONAL", 404),
    ("member", None, "ws_admin", "WORKSPACE", 404),
    ("outsider", None, "ws_admin", "WORKSPACE", 404),
]


@pytest.mark.parametrize(
    ("revoker", "via", "owner", "scope", "status"),
    [
        pytest.param(*c, id=f"{c[0]}-{c[1] or 'session'}-revokes-{c[2]}-{c[3]}-{c[4]}")
        for c in REVOKE_MATRIX
    ],
)
async def test_revoke_by_role(
    enterprise: Introspector,
    cast: Cast,
    revoker: str,
    via: str | None,
    owner: str,
    scope: str,
    status: int,
) -> None:
    """Only the org admin or that workspace's admin may revoke (204); else 404, token lives."""
    target = await enterprise.create_ok(cast[owner], **scope_body(scope, cast.ws))
    via_id = await token_of(enterprise, cast[revoker], via, cast.ws)
    response = await enterprise.revoke(cast[revoker], target["id"], via_token=via_id)
    if status == 404:
        assert (await problem(response, 404))["reason"] == "not_found"
    else:
        assert response.status == status, await response.text()
    assert await is_active(enterprise, target["token"]) is (status != 204)


# --- 5. listing everyone's tokens, paging ---------------------------------------------------
@pytest.mark.parametrize(
    ("role", "via", "status"),
    [
        pytest.param("org_admin", None, 200, id="org-admin-session-200"),
        pytest.param("org_admin", "ORGANIZATION", 200, id="org-admin-org-token-200"),
        pytest.param("org_admin", "PERSONAL", 403, id="org-admin-personal-token-403"),
        pytest.param("ws_admin", None, 403, id="ws-admin-403"),
        pytest.param("member", None, 403, id="member-403"),
    ],
)
async def test_list_all_is_for_org_admins(
    enterprise: Introspector, cast: Cast, role: str, via: str | None, status: int
) -> None:
    """?all=true is everyone's tokens for an org admin (session, ORGANIZATION token); else 403."""
    others = {
        await token_of(enterprise, cast[u], "PERSONAL", cast.ws) for u in ("member", "ws_admin")
    }
    via_id = await token_of(enterprise, cast[role], via, cast.ws)
    response = await get(enterprise, "/api-tokens?all=true", cast[role], via=via_id)
    if status == 403:
        assert (await problem(response, 403))["field"] == "all"
        return
    assert response.status == 200, await response.text()
    listed = {t["id"] for t in (await response.json())["items"]}
    assert others <= listed


async def test_list_pages_with_next_offset(introspector: Introspector) -> None:
    """limit=2 over three tokens: nextOffset 2, then null; the two pages cover all three."""
    alice = await introspector.user("alice@example.com")
    created = {(await introspector.create_ok(alice, name=f"t{i}"))["id"] for i in range(3)}
    first = await (await introspector.list(alice, "?limit=2")).json()
    assert len(first["items"]) == 2
    assert first["nextOffset"] == 2
    second = await (await introspector.list(alice, "?limit=2&offset=2")).json()
    assert len(second["items"]) == 1
    assert second["nextOffset"] is None
    assert {t["id"] for t in first["items"] + second["items"]} == created


# --- 6. token callers can only mint narrower, shorter-lived tokens --------------------------
@pytest.mark.parametrize("scope", ["WORKSPACE", "ORGANIZATION"])
async def test_personal_token_cannot_mint_broader_scope(
    enterprise: Introspector, cast: Cast, scope: str
) -> None:
    """A PERSONAL token cannot mint a broader token (403 "scope"), even an org admin's."""
    boss = cast["org_admin"]
    ws = await enterprise.workspace("Boss", {boss: Role.ADMIN})
    body = scope_body(scope, ws)
    assert (await enterprise.create(boss, **body)).status == 201  # the person may hold it
    personal = await enterprise.create_ok(boss)
    before = await token_rows(enterprise)
    response = await enterprise.create(boss, token_id=personal["id"], **body)
    assert (await problem(response, 403))["field"] == "scope"
    assert await token_rows(enterprise) == before


async def test_token_cannot_mint_a_longer_lived_token(introspector: Introspector) -> None:
    """An expiring token cannot mint a later expiry (403); with none, the child inherits it."""
    alice = await introspector.user("alice@example.com")
    expires = datetime.now(UTC) + timedelta(hours=1)
    parent = await introspector.create_ok(alice, expiresAt=expires.isoformat())
    later = (expires + timedelta(minutes=1)).isoformat()
    refused = await introspector.create(alice, token_id=parent["id"], expiresAt=later)
    assert (await problem(refused, 403))["field"] == "expiresAt"
    earlier = (expires - timedelta(minutes=1)).isoformat()
    shorter = await introspector.create(alice, token_id=parent["id"], expiresAt=earlier)
    assert shorter.status == 201, await shorter.text()
    inherited = await introspector.create(alice, token_id=parent["id"])
    assert inherited.status == 201, await inherited.text()
    child = await inherited.json()
    assert child["expiresAt"] == parent["expiresAt"]
    assert datetime.fromisoformat(child["expiresAt"]) == expires


# --- 7. the audit log -----------------------------------------------------------------------
async def test_audit_log_lists_token_events_newest_first(
    enterprise: Introspector, cast: Cast
) -> None:
    """An org admin sees events newest first, incl. token.create and token.revoke of the token."""
    created = await enterprise.create_ok(cast["member"])
    assert (await enterprise.revoke(cast["member"], created["id"])).status == 204
    response = await get(enterprise, "/audit-events?limit=200", cast["org_admin"])
    assert response.status == 200, await response.text()
    items = (await response.json())["items"]
    ids = [e["id"] for e in items]
    assert ids == sorted(set(ids), reverse=True)
    mine = [e for e in items if e["targetId"] == created["id"]]
    assert [e["action"] for e in mine] == ["token.revoke", "token.create"]
    assert all(e["actorUserId"] == str(cast["member"].id) for e in mine)
    assert all(e["actorKind"] == "session" for e in mine)


@pytest.mark.parametrize(
    ("role", "via"),
    [
        pytest.param("member", None, id="member"),
        pytest.param("ws_admin", None, id="ws-admin"),
        pytest.param("org_admin", "PERSONAL", id="org-admin-personal-token"),
    ],
)
async def test_audit_log_is_for_org_admins_only(
    enterprise: Introspector, cast: Cast, role: str, via: str | None
) -> None:
    """Anyone not acting as an org admin gets 403 from the audit log."""
    via_id = await token_of(enterprise, cast[role], via, cast.ws)
    response = await get(enterprise, "/audit-events", cast[role], via=via_id)
    assert (await problem(response, 403))["reason"] == "forbidden"


async def test_audit_log_pages_with_next_before(enterprise: Introspector, cast: Cast) -> None:
    """Walking limit=2 pages with ?before=nextBefore yields exactly the full list, then null."""
    for _ in range(2):
        created = await enterprise.create_ok(cast["member"])
        await enterprise.revoke(cast["member"], created["id"])
    full = await (await get(enterprise, "/audit-events?limit=200", cast["org_admin"])).json()
    assert full["nextBefore"] is None
    walked: list[dict[str, Any]] = []
    query = "?limit=2"
    while True:
        response = await get(enterprise, f"/audit-events{query}", cast["org_admin"])
        assert response.status == 200, await response.text()
        page = await response.json()
        assert 1 <= len(page["items"]) <= 2
        walked += page["items"]
        if page["nextBefore"] is None:
            break
        assert page["nextBefore"] == page["items"][-1]["id"]
        query = f"?limit=2&before={page['nextBefore']}"
    assert walked == full["items"]


async def test_organization_token_can_mint_narrower_workspace_token(
    enterprise: Introspector,
) -> None:
    """An ORGANIZATION token of an org admin who runs a workspace may mint a WORKSPACE token."""
    boss = await enterprise.user("boss@example.com", admin=True)
    ws = await enterprise.workspace("Acme", {boss: Role.ADMIN})
    org_token = await token_of(enterprise, boss, "ORGANIZATION", ws)
    response = await enterprise.create(boss, token_id=org_token, **scope_body("WORKSPACE", ws))
    assert response.status == 201, await response.text()
    assert (await response.json())["workspaceId"] == str(ws.id)


async def test_personal_token_of_admin_cannot_set_rate_limits(enterprise: Introspector) -> None:
    """Setting a rate limit is an org-admin act: a PERSONAL token of an admin may not."""
    boss = await enterprise.user("boss@example.com", admin=True)
    personal = (await enterprise.create_ok(boss))["id"]
    response = await enterprise.create(boss, token_id=personal, rateLimit=999_999)
    assert (await problem(response, 403))["field"] == "rateLimit"
