"""A person who loses a role loses the tokens that relied on it (security review 13, scopes).

Demotion revokes the affected tokens in the same transaction (audited, announced through the
revocation outbox), so a gateway refuses them within a second or so.
"""

from __future__ import annotations

from introspector import privileges, workspaces
from introspector.models import Actor, Role
from tests.harness.cast import is_active, scope_body
from tests.harness.polling import eventually
from tests.harness.stack import Stack, StartStack

ENTERPRISE = {"KEYGATE_EDITION": "enterprise"}


async def _answers(stack: Stack, token: str) -> int:
    response = await stack.gateway.get("/app", headers={"Authorization": f"Bearer {token}"})
    return response.status


async def test_demoted_workspace_admin_token_is_refused_by_the_gateway(
    start_stack: StartStack,
) -> None:
    """add-member --role member on an admin: their WORKSPACE token turns 401 at the gateway."""
    stack = await start_stack(ENTERPRISE)
    ki = stack.introspector
    admin = await ki.user("admin@example.com")
    ws = await ki.workspace("Acme", {admin: Role.ADMIN})
    ws_token = await stack.token_for(admin, **scope_body("WORKSPACE", ws))
    personal = await stack.token_for(admin)
    assert await _answers(stack, ws_token) == 200  # warm in every cache
    await workspaces.add_member(ki.db, Actor.operator(), ws, admin, Role.MEMBER)

    async def refused() -> bool:
        return await _answers(stack, ws_token) == 401

    assert await eventually(refused, within=3)
    assert await _answers(stack, personal) == 200
    details = await ki.db.fetchval(
        "SELECT details->>'reason' FROM audit_event WHERE action = 'token.revoke'"
    )
    assert details == "role_lost"


async def test_re_adding_an_admin_as_admin_keeps_the_token(start_stack: StartStack) -> None:
    """An upsert that keeps the admin role revokes nothing."""
    stack = await start_stack(ENTERPRISE)
    ki = stack.introspector
    admin = await ki.user("admin@example.com")
    ws = await ki.workspace("Acme", {admin: Role.ADMIN})
    ws_token = await stack.token_for(admin, **scope_body("WORKSPACE", ws))
    await workspaces.add_member(ki.db, Actor.operator(), ws, admin, Role.ADMIN)
    assert await is_active(ki, ws_token)


async def test_removed_member_loses_workspace_tokens(start_stack: StartStack) -> None:
    """Removing an admin from a workspace revokes their tokens bound to it, and only those."""
    stack = await start_stack(ENTERPRISE)
    ki = stack.introspector
    admin = await ki.user("admin@example.com")
    acme = await ki.workspace("Acme", {admin: Role.ADMIN})
    other = await ki.workspace("Other", {admin: Role.ADMIN})
    acme_token = await stack.token_for(admin, **scope_body("WORKSPACE", acme))
    other_token = await stack.token_for(admin, **scope_body("WORKSPACE", other))
    await workspaces.remove_member(ki.db, Actor.operator(), acme, admin)
    assert not await is_active(ki, acme_token)
    assert await is_active(ki, other_token)


async def test_org_admin_whose_flag_is_cleared_loses_organization_tokens(
    start_stack: StartStack,
) -> None:
    """Clearing is_admin revokes the ORGANIZATION tokens and what they minted; PERSONAL stays."""
    stack = await start_stack(ENTERPRISE)
    ki = stack.introspector
    boss = await ki.user("boss@example.com", admin=True)
    org = await ki.create_ok(boss, scope="ORGANIZATION")
    minted = await ki.create_ok(boss, token_id=org["id"], name="minted")
    personal = await stack.token_for(boss)
    assert await _answers(stack, org["token"]) == 200
    await privileges.set_org_admin(ki.db, Actor.operator(), boss, is_admin=False)

    async def refused() -> bool:
        return await _answers(stack, org["token"]) == 401

    assert await eventually(refused, within=3)
    assert not await is_active(ki, minted["token"])
    assert await is_active(ki, personal)
