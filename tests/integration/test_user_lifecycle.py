"""The user lifecycle through the management API: list, create, set a password, deactivate and
reactivate, for organisation admins only; deactivation is offboarding in one transaction."""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import aiohttp
import pytest

from introspector import users
from introspector.models import Actor, User
from tests.harness.stack import API, Introspector, Stack, StartStack

PASSWORD = "correct horse battery"


async def person(introspector: Introspector, email: str, *, admin: bool = False) -> User:
    return await users.create_user(
        introspector.db,
        introspector.hasher,
        Actor.operator(),
        email=email,
        password=PASSWORD,
        is_admin=admin,
    )


async def call(
    introspector: Introspector, caller: User, method: str, path: str, **kwargs: Any
) -> aiohttp.ClientResponse:
    return await introspector.client.request(
        method, f"{API}{path}", headers=introspector.headers(caller), **kwargs
    )


async def login(introspector: Introspector, email: str, password: str) -> aiohttp.ClientResponse:
    return await introspector.client.post(
        "/sessions", json={"email": email, "password": password}, headers=introspector.headers()
    )


async def problem(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    return body


async def test_an_admin_lists_people_by_email_with_filters(introspector: Introspector) -> None:
    """GET /users: ordered by e-mail, q filters by substring, status by state, paged."""
    root = await person(introspector, "root@example.com", admin=True)
    bob = await person(introspector, "bob@example.com")
    await person(introspector, "ann@example.com")
    await introspector.create_ok(bob)
    await call(introspector, root, "POST", f"/users/{bob.id}/deactivate")
    body = await (await call(introspector, root, "GET", "/users?limit=2")).json()
    assert [u["email"] for u in body["items"]] == ["ann@example.com", "bob@example.com"]
    assert body["nextOffset"] == 2
    bob_row = body["items"][1]
    assert bob_row["deactivatedAt"] is not None and bob_row["liveTokens"] == 0
    assert set(bob_row) == {
        "id", "email", "isAdmin", "createdAt", "deactivatedAt", "hasPassword", "externalId",
        "liveTokens",
    }  # fmt: skip
    rest = await (await call(introspector, root, "GET", "/users?offset=2")).json()
    assert [u["email"] for u in rest["items"]] == ["root@example.com"]
    assert rest["nextOffset"] is None
    active = await (await call(introspector, root, "GET", "/users?status=active&q=RoO")).json()
    assert [u["email"] for u in active["items"]] == ["root@example.com"]
    gone = await (await call(introspector, root, "GET", "/users?status=deactivated")).json()
    assert [u["email"] for u in gone["items"]] == ["bob@example.com"]
    one = await (await call(introspector, root, "GET", f"/users/{bob.id}")).json()
    assert one == bob_row


@pytest.mark.parametrize(
    ("query", "field"), [("?status=gone", "status"), ("?limit=0", "limit"), ("?limit=201", "limit")]
)
async def test_a_bad_list_query_names_its_field(
    introspector: Introspector, query: str, field: str
) -> None:
    """An unknown status or a limit out of 1..200 is 400 naming the parameter."""
    root = await person(introspector, "root@example.com", admin=True)
    body = await problem(await call(introspector, root, "GET", f"/users{query}"), 400)
    assert body["field"] == field


async def test_everyone_else_gets_403(introspector: Introspector) -> None:
    """A non-admin (and an admin calling with a PERSONAL token) may use none of the endpoints."""
    root = await person(introspector, "root@example.com", admin=True)
    alice = await person(introspector, "alice@example.com")
    personal = await introspector.create_ok(root)
    target = f"/users/{root.id}"
    for method, path, body in [
        ("GET", "/users", None),
        ("GET", target, None),
        ("POST", "/users", {"email": "x@example.com"}),
        ("PUT", f"{target}/password", {"password": "long enough"}),
        ("POST", f"{target}/deactivate", None),
        ("POST", f"{target}/reactivate", None),
    ]:
        await problem(await call(introspector, alice, method, path, json=body), 403)
        via_token = await introspector.client.request(
            method,
            f"{API}{path}",
            json=body,
            headers=introspector.headers(root, token_id=personal["id"]),
        )
        await problem(via_token, 403)


async def test_create_returns_the_user_and_refuses_bad_or_taken_input(
    introspector: Introspector,
) -> None:
    """POST /users: 201 with the user object; 400 on email/password; 409 on a taken e-mail."""
    root = await person(introspector, "root@example.com", admin=True)
    created = await call(
        introspector, root, "POST", "/users", json={"email": "New@Example.com", "password": "x" * 8}
    )
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["email"] == "new@example.com" and body["hasPassword"] is True
    assert body["liveTokens"] == 0 and body["deactivatedAt"] is None
    sso = await call(introspector, root, "POST", "/users", json={"email": "sso@example.com"})
    assert (await sso.json())["hasPassword"] is False
    for payload, status, field in [
        ({"email": "not-an-email"}, 400, "email"),
        ({"email": "short@example.com", "password": "1234567"}, 400, "password"),
        ({"email": "new@example.com"}, 409, "email"),
        ({"email": "x@example.com", "isAdmin": True}, 400, "isAdmin"),
    ]:
        response = await call(introspector, root, "POST", "/users", json=payload)
        assert (await problem(response, status))["field"] == field
    count = await introspector.db.fetchval("SELECT count(*) FROM users WHERE email LIKE 'short%'")
    assert count == 0


async def test_set_password_ends_sessions_and_keeps_deactivation(
    introspector: Introspector, redis_client: Any
) -> None:
    """PUT password: 204, old sessions gone, the new password signs in; too short is 400."""
    root = await person(introspector, "root@example.com", admin=True)
    alice = await person(introspector, "alice@example.com")
    assert (await login(introspector, "alice@example.com", PASSWORD)).status == 201
    assert await redis_client.keys("kg:sess:*")
    short = await call(
        introspector, root, "PUT", f"/users/{alice.id}/password", json={"password": "short"}
    )
    assert (await problem(short, 400))["field"] == "password"
    response = await call(
        introspector, root, "PUT", f"/users/{alice.id}/password", json={"password": "new secret 1"}
    )
    assert response.status == 204, await response.text()
    assert await redis_client.keys("kg:sess:*") == []
    assert (await login(introspector, "alice@example.com", PASSWORD)).status == 401
    assert (await login(introspector, "alice@example.com", "new secret 1")).status == 201
    await call(introspector, root, "POST", f"/users/{alice.id}/deactivate")
    await call(
        introspector, root, "PUT", f"/users/{alice.id}/password", json={"password": "newer one 2"}
    )
    assert (await login(introspector, "alice@example.com", "newer one 2")).status == 401
    assert await introspector.db.fetchval(
        "SELECT deactivated_at IS NOT NULL FROM users WHERE id = $1", alice.id
    )


async def test_unknown_or_malformed_ids_are_404(introspector: Introspector) -> None:
    """A user id that does not exist, or is not an id, is 404 on every per-user endpoint."""
    root = await person(introspector, "root@example.com", admin=True)
    for user_id in (str(uuid4()), "not-a-uuid"):
        for method, suffix, body in [
            ("GET", "", None),
            ("PUT", "password", {"password": "long enough"}),
            ("POST", "deactivate", None),
            ("POST", "reactivate", None),
        ]:
            response = await call(
                introspector, root, method, f"/users/{user_id}/{suffix}".rstrip("/"), json=body
            )
            await problem(response, 404)


async def test_deactivation_is_one_transaction_with_its_audit(introspector: Introspector) -> None:
    """Deactivate: tokens (and what they minted) revoked, user deactivated, audit rows naming the
    admin; twice → 200 with 0 and nothing more audited."""
    root = await person(introspector, "root@example.com", admin=True)
    alice = await person(introspector, "alice@example.com")
    parent = await introspector.create_ok(alice)
    child = await introspector.create(alice, token_id=parent["id"], name="child")
    assert child.status == 201
    response = await call(introspector, root, "POST", f"/users/{alice.id}/deactivate")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["revokedTokens"] == 2
    assert body["user"]["deactivatedAt"] is not None and body["user"]["liveTokens"] == 0
    events = await introspector.db.fetch(
        "SELECT action, actor_user_id, details->>'reason' AS reason FROM audit_event "
        "WHERE action IN ('user.deactivate', 'token.revoke') ORDER BY id"
    )
    assert {e["actor_user_id"] for e in events} == {root.id}
    assert sorted(e["action"] for e in events) == ["token.revoke"] * 2 + ["user.deactivate"]
    assert "user_deactivated" in {e["reason"] for e in events}
    again = await (await call(introspector, root, "POST", f"/users/{alice.id}/deactivate")).json()
    assert again["revokedTokens"] == 0
    assert (
        await introspector.db.fetchval(
            "SELECT count(*) FROM audit_event WHERE action = 'user.deactivate'"
        )
        == 1
    )
    assert await introspector.db.fetchval("SELECT count(*) FROM session_purge_outbox") == 0


async def test_nobody_deactivates_themselves_and_nothing_changes(
    introspector: Introspector,
) -> None:
    """Deactivating yourself is 409 on userId; your tokens, your state and the log are unchanged."""
    root = await person(introspector, "root@example.com", admin=True)
    await introspector.create_ok(root)
    audit_before = await introspector.db.fetchval("SELECT count(*) FROM audit_event")
    response = await call(introspector, root, "POST", f"/users/{root.id}/deactivate")
    assert (await problem(response, 409))["field"] == "userId"
    assert await introspector.db.fetchval("SELECT count(*) FROM audit_event") == audit_before
    assert (
        await introspector.db.fetchval("SELECT count(*) FROM api_token WHERE revoked_at IS NULL")
        == 1
    )
    assert await introspector.db.fetchval("SELECT deactivated_at FROM users") is None


async def test_a_deactivated_person_is_nobody(introspector: Introspector) -> None:
    """Deactivated: sign-in is 401 invalid_credentials, every management call as them is 401,
    and reactivation (audited) restores sign-in with the password kept, tokens still revoked."""
    root = await person(introspector, "root@example.com", admin=True)
    alice = await person(introspector, "alice@example.com")
    token = await introspector.create_ok(alice)
    await call(introspector, root, "POST", f"/users/{alice.id}/deactivate")
    refused = await problem(await login(introspector, "alice@example.com", PASSWORD), 401)
    wrong = await problem(await login(introspector, "alice@example.com", "wrong password"), 401)
    assert refused["detail"] == wrong["detail"]
    whoami = await problem(await call(introspector, alice, "GET", "/whoami"), 401)
    assert whoami["detail"] == "this account is deactivated"
    await problem(await introspector.create(alice), 401)
    reactivated = await call(introspector, root, "POST", f"/users/{alice.id}/reactivate")
    assert (await reactivated.json())["user"]["deactivatedAt"] is None
    assert (await login(introspector, "alice@example.com", PASSWORD)).status == 201
    assert (await introspector.introspect_json(token["token"])) == {"active": False}
    again = await call(introspector, root, "POST", f"/users/{alice.id}/reactivate")
    assert again.status == 200
    assert (
        await introspector.db.fetchval(
            "SELECT count(*) FROM audit_event "
            "WHERE action = 'user.reactivate' AND actor_user_id = $1",
            root.id,
        )
        == 1
    )


async def test_deactivation_ends_a_warm_token_and_a_session_at_the_gateway(
    start_stack: StartStack,
) -> None:
    """API end to end: after the deactivate call returns, the warm token is 401 through the
    gateway within 100 ms and the session cookie no longer authenticates."""
    stack: Stack = await start_stack(KEYGATE_SESSION_AUTHENTICATOR="local")
    introspector = stack.introspector
    root = await person(introspector, "root@example.com", admin=True)
    await person(introspector, "alice@example.com")
    alice_session = await (await login(introspector, "alice@example.com", PASSWORD)).json()
    alice = await users.get_user_by_email(introspector.db, "alice@example.com")
    token = await stack.token_for(alice)
    bearer = {"Authorization": f"Bearer {token}"}
    cookie = {"Cookie": f"kg_session={alice_session['sessionId']}"}
    for _ in range(2):
        assert (await stack.gateway.get("/app", headers=bearer)).status == 200
    assert (await stack.gateway.get(f"{API}/whoami", headers=cookie)).status == 200

    response = await call(introspector, root, "POST", f"/users/{alice.id}/deactivate")
    returned = time.monotonic()
    assert response.status == 200
    elapsed = await seconds_until_refused(stack, bearer, returned)
    assert elapsed < 0.1, f"the token was still accepted {elapsed * 1000:.0f} ms after the call"
    assert (await stack.gateway.get(f"{API}/whoami", headers=cookie)).status == 401


async def seconds_until_refused(stack: Stack, bearer: dict[str, str], since: float) -> float:
    """How long after ``since`` ``bearer`` was still accepted on an upstream path: when the
    last request that passed was sent (0 when the first one after ``since`` is refused; each
    request is sent once the one before has its answer; polling, 2 s max, ``inf`` if never
    refused). That request reached the gateway after it was sent, and passed: the token was
    known there at least that long. The first refusal's send time would also count the last
    accepted request's round trip, which a busy machine stretches (a CI run saw 134 ms).
    Not whoami: the introspector serves it and checks the token in Postgres; the upstream
    path is decided by the gateway's own cache, which only the announcement clears."""
    accepted = 0.0
    while (sent := time.monotonic()) - since < 2:
        if (await stack.gateway.get("/app", headers=bearer)).status == 401:
            return accepted
        accepted = sent - since
    return float("inf")
