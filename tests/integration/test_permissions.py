"""The management API's permission matrix, proved over real HTTP against a live introspector.

The people in every role and the helpers that act as them are in :mod:`tests.harness.cast`;
the audit log's permissions are in ``test_audit_log.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from introspector.models import Role
from tests.harness.cast import Cast, get, is_active, problem, scope_body, token_of, token_rows
from tests.harness.stack import Introspector, StartIntrospector


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
