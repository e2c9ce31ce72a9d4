"""The management API end to end over HTTP: create, list, use, revoke — with honest status codes."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from keygate_core.token_format import parse_token
from tests.harness.polling import eventually
from tests.harness.project import project_version
from tests.harness.stack import API, Introspector, StartIntrospector

TOKEN_SHAPE = re.compile(r"^kg_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$")


async def test_no_tokens_is_an_empty_list(introspector: Introspector) -> None:
    """A new user's list is empty, not an error."""
    alice = await introspector.user("alice@example.com")
    response = await introspector.list(alice)
    assert response.status == 200
    assert await response.json() == {"items": [], "nextOffset": None}


async def test_create_returns_the_token_once_in_the_exact_format(
    introspector: Introspector,
) -> None:
    """201 with metadata plus the plaintext, never cached; the list never repeats it."""
    alice = await introspector.user("alice@example.com")
    response = await introspector.create(alice, name="deploys")
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert TOKEN_SHAPE.match(body["token"])
    assert body["name"] == "deploys"
    assert body["scope"] == "PERSONAL"
    assert body["start"] == body["token"][:15]
    assert body["lastUsedAt"] is None
    assert body["status"] == "active"
    listing = await (await introspector.list(alice)).text()
    assert body["id"] in listing
    assert body["token"] not in listing
    assert parse_token(body["token"]).secret not in listing
    assert "$argon2" not in listing


async def test_two_users_tokens_are_independent(introspector: Introspector) -> None:
    """Each user lists only their own tokens."""
    alice = await introspector.user("alice@example.com")
    bob = await introspector.user("bob@example.com")
    a = await introspector.create_ok(alice, name="a")
    b = await introspector.create_ok(bob, name="b")
    alice_ids = [t["id"] for t in (await (await introspector.list(alice)).json())["items"]]
    bob_ids = [t["id"] for t in (await (await introspector.list(bob)).json())["items"]]
    assert alice_ids == [a["id"]]
    assert bob_ids == [b["id"]]


async def test_created_token_introspects_as_its_owner(introspector: Introspector) -> None:
    """The RFC 7662 answer names the owner, scope and token id."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice, name="a")
    body = await introspector.introspect_json(created["token"])
    assert body["active"] is True
    assert body["sub"] == str(alice.id)
    assert body["username"] == "alice@example.com"
    assert body["scope"] == "PERSONAL"
    assert body["token_type"] == "Bearer"
    assert body["token_id"] == created["id"]
    assert isinstance(body["iat"], int)
    assert "exp" not in body


async def test_revoked_token_is_inactive_and_second_delete_is_204(
    introspector: Introspector,
) -> None:
    """DELETE → 204; introspection then answers exactly {"active": false}; DELETE again → 204."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    assert (await introspector.introspect_json(created["token"]))["active"] is True
    assert (await introspector.revoke(alice, created["id"])).status == 204
    assert await introspector.introspect_json(created["token"]) == {"active": False}
    assert (await introspector.revoke(alice, created["id"])).status == 204
    listed = (await (await introspector.list(alice)).json())["items"][0]
    assert listed["status"] == "revoked"
    assert listed["revokedAt"] is not None


async def test_revoke_unknown_id_is_404(introspector: Introspector) -> None:
    """Revoking an id that does not exist (or is not an id) answers 404 problem+json."""
    alice = await introspector.user("alice@example.com")
    for token_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = await introspector.revoke(alice, token_id)
        assert response.status == 404
        assert response.content_type == "application/problem+json"


async def test_last_used_is_null_then_set_then_increasing(introspector: Introspector) -> None:
    """lastUsedAt starts null, is set after a use, and moves forward on a later use."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)

    async def last_used() -> str | None:
        items = (await (await introspector.list(alice)).json())["items"]
        value: str | None = items[0]["lastUsedAt"]
        return value

    assert await last_used() is None
    await introspector.introspect_json(created["token"])
    first = await eventually(last_used)
    assert first is not None
    await asyncio.sleep(0.05)
    await introspector.introspect_json(created["token"])

    async def moved() -> bool:
        value = await last_used()
        return value is not None and value > first

    assert await eventually(moved)


async def test_expiry_is_honoured(introspector: Introspector) -> None:
    """expiresAt is returned as given and a token past it is inactive."""
    alice = await introspector.user("alice@example.com")
    soon = datetime.now(UTC) + timedelta(seconds=2)
    created = await introspector.create_ok(alice, expiresAt=soon.isoformat())
    assert datetime.fromisoformat(created["expiresAt"]) == soon
    body = await introspector.introspect_json(created["token"])
    assert body["active"] is True
    assert body["exp"] == int(soon.timestamp())

    async def inactive() -> bool:
        return (await introspector.introspect_json(created["token"])) == {"active": False}

    assert await eventually(inactive, within=6)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userId": "00000000-0000-0000-0000-000000000000"}, "userId"),
        ({"revokedAt": None}, "revokedAt"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": 42}, "name"),
        ({"scope": "EVERYTHING"}, "scope"),
        ({"workspaceId": "nope"}, "workspaceId"),
        ({"expiresAt": "tomorrow"}, "expiresAt"),
        ({"expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt"),
        ({"expiresAt": "2999-01-01T00:00:00"}, "expiresAt"),
        ({"rateLimit": 5}, "rateLimit"),
    ],
    ids=[
        "mass-assign-user",
        "mass-assign-revoked",
        "empty-name",
        "null-name",
        "number-name",
        "bad-scope",
        "bad-workspace-id",
        "bad-date",
        "past-date",
        "naive-date",
        "member-sets-rate-limit",
    ],
)
async def test_bad_create_input_names_the_field_and_writes_nothing(
    introspector: Introspector, body: dict[str, object], field: str
) -> None:
    """Each bad body is a 400/403 problem naming the field, and no token row appears."""
    alice = await introspector.user("alice@example.com")
    response = await introspector.client.post(
        f"{API}/api-tokens", json={"name": "ok", **body}, headers=introspector.headers(alice)
    )
    assert response.status in (400, 403)
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["field"] == field
    assert problem["status"] == response.status
    assert await introspector.db.fetchval("SELECT count(*) FROM api_token") == 0


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"not json", "application/json"),
        (b"[]", "application/json"),
        (b"name=x", "application/x-www-form-urlencoded"),
    ],
    ids=["invalid-json", "json-array", "form-body"],
)
async def test_malformed_bodies_are_400(
    introspector: Introspector, data: bytes, content_type: str
) -> None:
    """Bodies that are not a JSON object are refused with field "body"."""
    alice = await introspector.user("alice@example.com")
    response = await introspector.client.post(
        f"{API}/api-tokens",
        data=data,
        headers={**introspector.headers(alice), "Content-Type": content_type},
    )
    assert response.status == 400
    assert (await response.json())["field"] == "body"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{API}/api-tokens"),
        ("POST", f"{API}/api-tokens"),
        ("GET", f"{API}/whoami"),
        ("GET", f"{API}/audit-events"),
        ("POST", "/introspect"),
    ],
    ids=["list", "create", "whoami", "audit", "introspect"],
)
async def test_without_the_internal_secret_nothing_is_served(
    introspector: Introspector, method: str, path: str
) -> None:
    """A caller without the gateway's secret gets 401 and no data, even with identity headers."""
    alice = await introspector.user("alice@example.com")
    await introspector.create_ok(alice)
    response = await introspector.client.request(
        method, path, headers=introspector.headers(alice, secret=False), data={"token": "x"}
    )
    assert response.status == 401
    body = await response.json()
    assert body["reason"] == "internal_secret_refused"
    assert "items" not in body


async def test_management_without_identity_is_401(introspector: Introspector) -> None:
    """With the internal secret but no user identity, the management API answers 401."""
    response = await introspector.client.get(f"{API}/api-tokens", headers=introspector.headers())
    assert response.status == 401


async def test_whoami_for_session_and_token(introspector: Introspector) -> None:
    """whoami names the user, workspaces, usable scopes, auth method and token id."""
    from introspector.models import Role

    alice = await introspector.user("alice@example.com")
    ws = await introspector.workspace("Acme", {alice: Role.MEMBER})
    session = await introspector.client.get(f"{API}/whoami", headers=introspector.headers(alice))
    assert session.status == 200
    body = await session.json()
    assert body == {
        "userId": str(alice.id),
        "email": "alice@example.com",
        "workspaces": [{"id": str(ws.id), "name": "Acme", "role": "member"}],
        "scopes": ["PERSONAL"],
        "authMethod": "session",
    }
    created = await introspector.create_ok(alice)
    via_token = await introspector.client.get(
        f"{API}/whoami", headers=introspector.headers(alice, token_id=created["id"])
    )
    token_body = await via_token.json()
    assert token_body["authMethod"] == "token"
    assert token_body["tokenId"] == created["id"]
    assert token_body["scopes"] == ["PERSONAL"]


async def test_revoked_token_cannot_act_as_caller(introspector: Introspector) -> None:
    """Management calls made with a revoked token's identity are 401."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    await introspector.revoke(alice, created["id"])
    response = await introspector.client.get(
        f"{API}/whoami", headers=introspector.headers(alice, token_id=created["id"])
    )
    assert response.status == 401


async def test_health_endpoints(introspector: Introspector) -> None:
    """healthz names the release, readyz checks Postgres and Redis, neither needs the secret."""
    health = await introspector.client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok", "version": project_version()}
    ready = await introspector.client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_pending_last_used_is_flushed_on_shutdown(
    start_introspector: StartIntrospector,
) -> None:
    """Uses noted in memory are written when the introspector shuts down, not lost."""
    introspector = await start_introspector(KEYGATE_LAST_USED_FLUSH_SECONDS="3600")
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    await introspector.introspect_json(created["token"])
    query = "SELECT last_used_at FROM api_token WHERE id = $1"
    assert await introspector.db.fetchval(query, uuid.UUID(created["id"])) is None
    await introspector.client.close()  # runs the app's cleanup, as SIGTERM would
    assert await introspector.db.fetchval(query, uuid.UUID(created["id"])) is not None
