"""The audit log over real HTTP: token events newest first, for org admins only, paged."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.cast import Cast, get, problem, token_of
from tests.harness.stack import Introspector


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
