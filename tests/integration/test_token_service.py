"""The token service on real Postgres: lifecycle, scopes, atomic audit, no plaintext at rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from introspector import audit, tokens, users, workspaces
from introspector.errors import EditionRestricted, Forbidden, InvalidInput, NotFound
from introspector.hashing import SecretHasher
from introspector.models import Actor, ActorKind, Role, User
from introspector.settings import Edition
from keygate_core.scopes import Scope
from keygate_core.token_format import parse_token

OPERATOR = Actor.operator()


async def make_user(
    db: asyncpg.Connection, hasher: SecretHasher, email: str, *, admin: bool = False
) -> User:
    return await users.create_user(db, hasher, OPERATOR, email=email, is_admin=admin)


async def dump_database(db: asyncpg.Connection) -> str:
    """Every row of every keygate table as text."""
    parts = []
    for table in ("users", "workspaces", "workspace_members", "api_token", "audit_event"):
        parts += [r[0] for r in await db.fetch(f"SELECT row_to_json(t)::text FROM {table} t")]
    return "\n".join(parts)


async def test_create_stores_only_an_argon2id_hash(
    db: asyncpg.Connection, hasher: SecretHasher
) -> None:
    """The row holds a $argon2id$ hash that verifies the secret; no table holds the plaintext."""
    owner = await make_user(db, hasher, "owner@example.com")
    created = await tokens.create_token(
        db, hasher, OPERATOR, owner=owner, name="ci", edition=Edition.COMMUNITY
    )
    parts = parse_token(created.plaintext)
    stored = await db.fetchval("SELECT token_hash FROM api_token WHERE id = $1", created.record.id)
    assert stored.startswith("$argon2id$")
    assert hasher.verify(stored, parts.secret)
    dump = await dump_database(db)
    assert created.plaintext not in dump
    assert parts.secret not in dump
    assert parts.public_id in dump  # the lookup key is meant to be stored


async def test_create_and_revoke_each_write_one_audit_event(
    db: asyncpg.Connection, hasher: SecretHasher
) -> None:
    """Create and revoke are logged with actor and target; a repeated revoke logs nothing."""
    owner = await make_user(db, hasher, "owner@example.com")
    actor = Actor(
        kind=ActorKind.SESSION, user_id=owner.id, source_ip="203.0.113.9", request_id="r1"
    )
    created = await tokens.create_token(
        db, hasher, actor, owner=owner, name="ci", edition=Edition.COMMUNITY
    )
    record, revoked_now = await tokens.revoke_token(db, actor, created.record.id)
    assert revoked_now and record.revoked_at is not None
    record, revoked_now = await tokens.revoke_token(db, actor, created.record.id)
    assert not revoked_now
    events = [e for e in await audit.list_events(db) if e.action.startswith("token.")]
    assert [e.action for e in events] == ["token.revoke", "token.create"]
    for event in events:
        assert event.target_id == str(created.record.id)
        assert event.actor_user_id == owner.id
        assert event.source_ip == "203.0.113.9"
        assert event.request_id == "r1"


async def test_failed_audit_write_leaves_no_token(
    db: asyncpg.Connection, hasher: SecretHasher
) -> None:
    """If the audit event cannot be written, the token is not created either (one transaction)."""
    owner = await make_user(db, hasher, "owner@example.com")
    broken = Actor(kind=ActorKind.SESSION, user_id=owner.id, source_ip="not-an-address")
    with pytest.raises(asyncpg.PostgresError):
        await tokens.create_token(
            db, hasher, broken, owner=owner, name="ci", edition=Edition.COMMUNITY
        )
    assert await db.fetchval("SELECT count(*) FROM api_token") == 0


async def test_failed_audit_write_leaves_token_unrevoked(
    db: asyncpg.Connection, hasher: SecretHasher
) -> None:
    """A revoke whose audit event fails is rolled back: the token stays active."""
    owner = await make_user(db, hasher, "owner@example.com")
    created = await tokens.create_token(
        db, hasher, OPERATOR, owner=owner, name="ci", edition=Edition.COMMUNITY
    )
    broken = Actor(kind=ActorKind.SESSION, user_id=owner.id, source_ip="not-an-address")
    with pytest.raises(asyncpg.PostgresError):
        await tokens.revoke_token(db, broken, created.record.id)
    assert await db.fetchval("SELECT revoked_at FROM api_token") is None


async def test_users_see_and_revoke_only_their_own(
    db: asyncpg.Connection, hasher: SecretHasher
) -> None:
    """Listing is per owner; another owner's token is 'not found', never 'forbidden'."""
    alice = await make_user(db, hasher, "alice@example.com")
    bob = await make_user(db, hasher, "bob@example.com")
    assert await tokens.list_tokens(db, user_id=alice.id) == []
    a = await tokens.create_token(
        db, hasher, OPERATOR, owner=alice, name="a", edition=Edition.COMMUNITY
    )
    b = await tokens.create_token(
        db, hasher, OPERATOR, owner=bob, name="b", edition=Edition.COMMUNITY
    )
    assert [t.id for t in await tokens.list_tokens(db, user_id=alice.id)] == [a.record.id]
    assert [t.id for t in await tokens.list_tokens(db, user_id=bob.id)] == [b.record.id]
    assert {t.id for t in await tokens.list_tokens(db, user_id=None)} == {a.record.id, b.record.id}
    with pytest.raises(NotFound):
        await tokens.revoke_token(db, OPERATOR, b.record.id, visible_to=alice.id)
    assert await db.fetchval("SELECT revoked_at FROM api_token WHERE id = $1", b.record.id) is None


SCOPE_CASES = [
    # edition, scope, owner is org admin, workspace role, expected error
    (Edition.COMMUNITY, Scope.PERSONAL, False, None, None),
    (Edition.COMMUNITY, Scope.WORKSPACE, False, Role.ADMIN, EditionRestricted),
    (Edition.COMMUNITY, Scope.ORGANIZATION, True, None, EditionRestricted),
    (Edition.ENTERPRISE, Scope.PERSONAL, False, None, None),
    (Edition.ENTERPRISE, Scope.WORKSPACE, False, Role.MEMBER, Forbidden),
    (Edition.ENTERPRISE, Scope.WORKSPACE, False, Role.ADMIN, None),
    (Edition.ENTERPRISE, Scope.WORKSPACE, False, None, NotFound),
    (Edition.ENTERPRISE, Scope.ORGANIZATION, False, None, Forbidden),
    (Edition.ENTERPRISE, Scope.ORGANIZATION, True, None, None),
]


@pytest.mark.parametrize(
    ("edition", "scope", "org_admin", "role", "error"),
    SCOPE_CASES,
    ids=[
        "community-personal",
        "community-workspace-refused",
        "community-organization-refused",
        "enterprise-personal",
        "enterprise-workspace-member-refused",
        "enterprise-workspace-admin",
        "enterprise-workspace-non-member",
        "enterprise-organization-non-admin",
        "enterprise-organization-admin",
    ],
)
async def test_scope_rules(
    db: asyncpg.Connection,
    hasher: SecretHasher,
    edition: Edition,
    scope: Scope,
    org_admin: bool,
    role: Role | None,
    error: type[Exception] | None,
) -> None:
    """Who may hold which scope, in which edition; a refusal writes nothing."""
    owner = await make_user(db, hasher, "owner@example.com", admin=org_admin)
    workspace_id = None
    if scope is Scope.WORKSPACE:
        ws = await workspaces.create_workspace(db, OPERATOR, name="Acme")
        workspace_id = ws.id
        if role is not None:
            await workspaces.add_member(db, OPERATOR, ws, owner, role)
    create = tokens.create_token(
        db,
        hasher,
        OPERATOR,
        owner=owner,
        name="t",
        edition=edition,
        scope=scope,
        workspace_id=workspace_id,
    )
    if error is None:
        created = await create
        assert created.record.scope is scope
        assert created.record.workspace_id == workspace_id
    else:
        with pytest.raises(error) as caught:
            await create
        assert getattr(caught.value, "field", None) in {"scope", "workspaceId"}
        assert await db.fetchval("SELECT count(*) FROM api_token") == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "bad\nname"}, "name"),
        ({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, "expiresAt"),
        ({"expires_at": datetime(2999, 1, 1)}, "expiresAt"),
        ({"rate_limit": 0}, "rateLimit"),
        ({"scope": Scope.WORKSPACE}, "workspaceId"),
    ],
    ids=[
        "blank-name",
        "long-name",
        "control-char",
        "past-expiry",
        "naive-expiry",
        "zero-limit",
        "workspace-scope-without-workspace",
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    db: asyncpg.Connection, hasher: SecretHasher, kwargs: dict[str, object], field: str
) -> None:
    """Invalid create arguments raise InvalidInput naming the field; no row appears."""
    owner = await make_user(db, hasher, "owner@example.com")
    args: dict[str, object] = {"name": "ok", "edition": Edition.ENTERPRISE, **kwargs}
    with pytest.raises(InvalidInput) as caught:
        await tokens.create_token(db, hasher, OPERATOR, owner=owner, **args)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert await db.fetchval("SELECT count(*) FROM api_token") == 0


async def test_expired_token_reports_expired_status(
    db: asyncpg.Connection, hasher: SecretHasher
) -> None:
    """A token past expires_at reads as expired; revocation wins over expiry."""
    owner = await make_user(db, hasher, "owner@example.com")
    soon = datetime.now(UTC) + timedelta(hours=1)
    created = await tokens.create_token(
        db, hasher, OPERATOR, owner=owner, name="t", edition=Edition.COMMUNITY, expires_at=soon
    )
    later = soon + timedelta(seconds=1)
    assert created.record.status(later).value == "expired"
    assert created.record.status(soon - timedelta(minutes=5)).value == "active"
    record, _ = await tokens.revoke_token(db, OPERATOR, created.record.id)
    assert record.status(later).value == "revoked"
