"""A token acting on the management API stays inside its own reach (security review 6 and 7).

A WORKSPACE token mints, lists, revokes and sees only what is bound to its workspace; a minted
token never gets more than its parent's rate limit, records its parent, and dies with it; each
person has a cap on live tokens.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from introspector import tokens
from introspector.models import Actor, Role
from introspector.settings import Edition
from tests.harness.cast import Cast, get, is_active, problem, scope_body, token_of, token_rows
from tests.harness.polling import eventually
from tests.harness.stack import Introspector, StartIntrospector


async def test_workspace_token_cannot_mint_an_unbound_personal_token(
    enterprise: Introspector, cast: Cast
) -> None:
    """A WORKSPACE token asking for a plain (PERSONAL) token gets 403 on "scope", no row."""
    ws_token = await token_of(enterprise, cast["ws_admin"], "WORKSPACE", cast.ws)
    before = await token_rows(enterprise)
    response = await enterprise.create(cast["ws_admin"], token_id=ws_token, name="escape")
    body = await problem(response, 403)
    assert body["field"] == "scope"
    assert "WORKSPACE" in body["detail"]
    assert await token_rows(enterprise) == before


async def test_workspace_token_mints_only_for_its_own_workspace(
    enterprise: Introspector, cast: Cast
) -> None:
    """A WORKSPACE token mints a WORKSPACE token of its workspace (201, parentId = it)."""
    ws_token = await token_of(enterprise, cast["ws_admin"], "WORKSPACE", cast.ws)
    child = await enterprise.create_ok(
        cast["ws_admin"], token_id=ws_token, **scope_body("WORKSPACE", cast.ws)
    )
    assert child["workspaceId"] == str(cast.ws.id)
    assert child["parentId"] == ws_token


async def test_workspace_token_lists_and_sees_only_its_workspace(
    enterprise: Introspector, cast: Cast
) -> None:
    """Listing and whoami through a WORKSPACE token show its workspace's tokens and nothing else."""
    admin = cast["ws_admin"]
    side = await enterprise.workspace("Side", {admin: Role.ADMIN})
    ws_token = await token_of(enterprise, admin, "WORKSPACE", cast.ws)
    sibling = await token_of(enterprise, admin, "WORKSPACE", cast.ws)
    await token_of(enterprise, admin, "WORKSPACE", side)
    await token_of(enterprise, admin, "PERSONAL", cast.ws)
    listed = await get(enterprise, "/api-tokens", admin, via=ws_token)
    assert listed.status == 200, await listed.text()
    assert {t["id"] for t in (await listed.json())["items"]} == {ws_token, sibling}
    me = await get(enterprise, "/whoami", admin, via=ws_token)
    assert [w["id"] for w in (await me.json())["workspaces"]] == [str(cast.ws.id)]


async def test_workspace_token_cannot_revoke_the_owners_broader_tokens(
    enterprise: Introspector, cast: Cast
) -> None:
    """The owner's ORGANIZATION, PERSONAL and other-workspace tokens answer 404 and stay active."""
    boss = cast["org_admin"]
    acme = await enterprise.workspace("Boss Acme", {boss: Role.ADMIN})
    other = await enterprise.workspace("Boss Other", {boss: Role.ADMIN})
    ws_token = await token_of(enterprise, boss, "WORKSPACE", acme)
    targets = [
        await enterprise.create_ok(boss, **scope_body("ORGANIZATION", acme)),
        await enterprise.create_ok(boss),
        await enterprise.create_ok(boss, **scope_body("WORKSPACE", other)),
    ]
    for target in targets:
        refused = await enterprise.revoke(boss, target["id"], via_token=ws_token)
        assert (await problem(refused, 404))["reason"] == "not_found"
        assert await is_active(enterprise, target["token"])


async def test_personal_token_lists_only_personal_tokens(
    enterprise: Introspector, cast: Cast
) -> None:
    """A PERSONAL token's reach is the owner's PERSONAL tokens: it lists no WORKSPACE token."""
    admin = cast["ws_admin"]
    personal = await token_of(enterprise, admin, "PERSONAL", cast.ws)
    await token_of(enterprise, admin, "WORKSPACE", cast.ws)
    listed = await (await get(enterprise, "/api-tokens", admin, via=personal)).json()
    assert {t["scope"] for t in listed["items"]} == {"PERSONAL"}


async def test_child_inherits_the_parents_rate_limit(introspector: Introspector) -> None:
    """A child of a 10/min token gets 10/min; asking for more is 403 on "rateLimit"."""
    alice = await introspector.user("alice@example.com")
    parent = await tokens.create_token(
        introspector.db,
        introspector.hasher,
        Actor.operator(),
        owner=alice,
        name="partner",
        edition=Edition.COMMUNITY,
        rate_limit=10,
    )
    parent_id = str(parent.record.id)
    child = await introspector.create_ok(alice, token_id=parent_id, name="child")
    assert child["rateLimit"] == 10
    assert child["parentId"] == parent_id
    refused = await introspector.create(alice, token_id=parent_id, rateLimit=1000)
    assert (await problem(refused, 403))["field"] == "rateLimit"


async def test_org_token_mints_a_narrower_rate_limit_only(enterprise: Introspector) -> None:
    """An org admin's 100/min token may mint 50/min (201) but not 500/min (403)."""
    boss = await enterprise.user("boss@example.com", admin=True)
    parent = await enterprise.create_ok(boss, scope="ORGANIZATION", rateLimit=100)
    narrower = await enterprise.create_ok(boss, token_id=parent["id"], rateLimit=50)
    assert narrower["rateLimit"] == 50
    wider = await enterprise.create(boss, token_id=parent["id"], rateLimit=500)
    assert (await problem(wider, 403))["field"] == "rateLimit"


async def test_children_die_with_their_parent(introspector: Introspector) -> None:
    """Revoking a parent revokes its child and grandchild (audited, announced) in one step."""
    alice = await introspector.user("alice@example.com")
    parent = await introspector.create_ok(alice, name="parent")
    child = await introspector.create_ok(alice, token_id=parent["id"], name="child")
    grandchild = await introspector.create_ok(alice, token_id=child["id"], name="grandchild")
    unrelated = await introspector.create_ok(alice, name="unrelated")
    for token in (child, grandchild):
        assert await is_active(introspector, token["token"])  # warm in the cache
    assert (await introspector.revoke(alice, parent["id"])).status == 204
    for token in (child, grandchild):

        async def refused(token: dict[str, str] = token) -> bool:
            return not await is_active(introspector, token["token"])

        assert await eventually(refused)
    assert await is_active(introspector, unrelated["token"])
    revoked = await introspector.db.fetch(
        "SELECT target_id, details FROM audit_event WHERE action = 'token.revoke'"
    )
    assert {r["target_id"] for r in revoked} == {parent["id"], child["id"], grandchild["id"]}
    assert await introspector.db.fetchval("SELECT count(*) FROM revocation_outbox") == 0


async def test_listing_names_the_parent(introspector: Introspector) -> None:
    """The listing shows each token's parentId (null when made by a session)."""
    alice = await introspector.user("alice@example.com")
    parent = await introspector.create_ok(alice, name="parent")
    child = await introspector.create_ok(alice, token_id=parent["id"], name="child")
    listed = await (await introspector.list(alice)).json()
    parents = {t["id"]: t["parentId"] for t in listed["items"]}
    assert parents == {parent["id"]: None, child["id"]: parent["id"]}


async def test_live_tokens_per_person_are_capped(start_introspector: StartIntrospector) -> None:
    """With a cap of 3, the 4th live token is 409 with no row; revoking one makes room."""
    ki = await start_introspector(KEYGATE_MAX_TOKENS_PER_USER="3")
    alice = await ki.user("alice@example.com")
    made = [await ki.create_ok(alice, name=f"t{i}") for i in range(3)]
    refused = await problem(await ki.create(alice, name="t3"), 409)
    assert refused["reason"] == "too_many_tokens"
    assert await token_rows(ki) == 3
    assert (await ki.revoke(alice, made[0]["id"])).status == 204
    assert (await ki.create(alice, name="t3")).status == 201
    bob = await ki.user("bob@example.com")
    assert (await ki.create(bob, name="b0")).status == 201  # the cap is per person
    assert UUID(made[1]["id"])


async def test_concurrent_creates_cannot_pass_the_cap_together(
    start_introspector: StartIntrospector,
) -> None:
    """Ten concurrent creates against a cap of 3: exactly three rows, the rest 409."""
    ki = await start_introspector(KEYGATE_MAX_TOKENS_PER_USER="3")
    alice = await ki.user("alice@example.com")
    responses = await asyncio.gather(*(ki.create(alice, name=f"t{i}") for i in range(10)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * 3 + [409] * 7
    assert await token_rows(ki) == 3


async def test_no_child_outlives_a_parent_revoked_while_it_mints(
    introspector: Introspector,
) -> None:
    """Children minted while their parent is being revoked are refused (401) or revoked too."""
    alice = await introspector.user("alice@example.com")
    parent = await introspector.create_ok(alice, name="parent")
    mints = [
        asyncio.create_task(introspector.create(alice, token_id=parent["id"], name=f"c{i}"))
        for i in range(8)
    ]
    await asyncio.sleep(0.01)
    assert (await introspector.revoke(alice, parent["id"])).status == 204
    statuses = {(await task).status for task in mints}
    assert statuses <= {201, 401}, statuses
    survivors = await introspector.db.fetchval(
        "SELECT count(*) FROM api_token WHERE parent_id = $1 AND revoked_at IS NULL",
        UUID(parent["id"]),
    )
    assert survivors == 0
