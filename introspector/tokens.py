"""The token service: create, list and revoke API tokens.

Used by the operator CLI and the HTTP API alike. Creating and revoking each commit their audit
event in the same transaction, so the log never misses a change and never records one that did
not happen. The plaintext exists only in :class:`CreatedToken`; the database holds the argon2id
hash of the secret part.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from introspector.audit import record_event
from introspector.db import Connection
from introspector.errors import EditionRestricted, Forbidden, InvalidInput, NotFound
from introspector.hashing import SecretHasher
from introspector.models import Actor, CreatedToken, Role, TokenRecord, User
from introspector.settings import Edition
from introspector.workspaces import role_in
from keygate_core.scopes import Scope
from keygate_core.token_format import generate_token

MAX_NAME_LENGTH = 100
MAX_RATE_LIMIT = 1_000_000

_SELECT = """
    SELECT t.id, t.public_id, t.user_id, u.email AS user_email, t.workspace_id, t.name,
           t.scope::text AS scope, t.rate_limit, t.created_at, t.last_used_at, t.expires_at,
           t.revoked_at
    FROM api_token t JOIN users u ON u.id = t.user_id
"""

_INSERT = """
    WITH inserted AS (
        INSERT INTO api_token (public_id, user_id, workspace_id, name, token_hash, scope,
                               rate_limit, expires_at, created_at, secret_verifier,
                               secret_verifier_key_id)
        VALUES ($1, $2, $3, $4, $5, $6::token_scope, $7, $8, $9, $11, $12)
        RETURNING *
    )
    SELECT t.id, t.public_id, t.user_id, $10::text AS user_email, t.workspace_id, t.name,
           t.scope::text AS scope, t.rate_limit, t.created_at, t.last_used_at,
           t.expires_at, t.revoked_at
    FROM inserted t
"""


def _record(row: asyncpg.Record) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        public_id=row["public_id"],
        user_id=row["user_id"],
        user_email=row["user_email"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        scope=Scope(row["scope"]),
        rate_limit=row["rate_limit"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def clean_token_name(name: str) -> str:
    """A trimmed name of 1–100 printable characters, else :class:`InvalidInput` on ``name``."""
    cleaned = name.strip()
    if not cleaned:
        raise InvalidInput("must not be empty", field="name")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(f"must be at most {MAX_NAME_LENGTH} characters", field="name")
    if not cleaned.isprintable():
        raise InvalidInput("must not contain control characters", field="name")
    return cleaned


def check_scope_allowed(
    edition: Edition, owner: User, scope: Scope, workspace_role: Role | None
) -> None:
    """Refuse a scope the owner may not hold.

    PERSONAL: anyone. WORKSPACE: an admin of that workspace. ORGANIZATION: an organisation admin.
    The last two exist only in the enterprise edition.
    """
    if scope is Scope.PERSONAL:
        return
    if edition is not Edition.ENTERPRISE:
        raise EditionRestricted(
            f"{scope.value} tokens need the enterprise edition; this keygate runs the community "
            "edition, which issues PERSONAL tokens only",
            field="scope",
        )
    if scope is Scope.WORKSPACE and workspace_role is not Role.ADMIN:
        raise Forbidden("only an admin of the workspace can create WORKSPACE tokens", field="scope")
    if scope is Scope.ORGANIZATION and not owner.is_admin:
        raise Forbidden("only an organisation admin can create ORGANIZATION tokens", field="scope")


async def _check_new_token(
    conn: Connection,
    edition: Edition,
    owner: User,
    scope: Scope,
    workspace_id: UUID | None,
    expires_at: datetime | None,
    rate_limit: int | None,
    now: datetime,
) -> None:
    """Refuse a token that may not be created: bad expiry or rate limit, a scope that does not
    fit the workspace binding, a workspace the owner is not in, a scope the owner may not hold."""
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput("must include a time zone", field="expiresAt")
        if expires_at <= now:
            raise InvalidInput("must be in the future", field="expiresAt")
    if rate_limit is not None and not 1 <= rate_limit <= MAX_RATE_LIMIT:
        raise InvalidInput(f"must be between 1 and {MAX_RATE_LIMIT}", field="rateLimit")
    if scope is Scope.WORKSPACE and workspace_id is None:
        raise InvalidInput("a WORKSPACE token needs a workspace", field="workspaceId")
    if scope is not Scope.WORKSPACE and workspace_id is not None:
        raise InvalidInput(
            f"a {scope.value} token is not bound to a workspace", field="workspaceId"
        )
    role = await role_in(conn, workspace_id, owner.id) if workspace_id is not None else None
    if workspace_id is not None and role is None:
        raise NotFound("no such workspace, or the owner is not a member", field="workspaceId")
    check_scope_allowed(edition, owner, scope, role)


async def create_token(
    conn: Connection,
    hasher: SecretHasher,
    actor: Actor,
    *,
    owner: User,
    name: str,
    edition: Edition,
    scope: Scope = Scope.PERSONAL,
    workspace_id: UUID | None = None,
    expires_at: datetime | None = None,
    rate_limit: int | None = None,
    now: datetime | None = None,
) -> CreatedToken:
    """Create a token for ``owner``; the result carries the plaintext exactly once."""
    name = clean_token_name(name)
    now = now or datetime.now(UTC)
    await _check_new_token(conn, edition, owner, scope, workspace_id, expires_at, rate_limit, now)
    plaintext, parts = generate_token()
    # argon2 runs before the transaction opens: no row lock is held while hashing.
    token_hash = await hasher.hash_async(parts.secret)
    verifier = hasher.token_verifier
    async with conn.transaction():
        row = await conn.fetchrow(
            _INSERT,
            parts.public_id,
            owner.id,
            workspace_id,
            name,
            token_hash,
            scope.value,
            rate_limit,
            expires_at,
            now,
            owner.email,
            None if verifier is None else verifier.sign(parts.secret),
            None if verifier is None else verifier.key_id,
        )
        assert row is not None
        record = _record(row)
        await record_event(
            conn,
            actor,
            "token.create",
            target_type="api_token",
            target_id=record.id,
            details={
                "ownerId": str(owner.id),
                "name": name,
                "scope": scope.value,
                "workspaceId": None if workspace_id is None else str(workspace_id),
                "expiresAt": None if expires_at is None else expires_at.isoformat(),
                "start": record.display_start,
            },
        )
    return CreatedToken(record=record, plaintext=plaintext)


async def list_tokens(
    conn: Connection,
    *,
    user_id: UUID | None,
    limit: int = 100,
    offset: int = 0,
) -> list[TokenRecord]:
    """Tokens of ``user_id`` (or everyone's when ``None``), newest first."""
    rows = await conn.fetch(
        _SELECT
        + """
        WHERE $1::uuid IS NULL OR t.user_id = $1
        ORDER BY t.created_at DESC, t.id
        LIMIT $2 OFFSET $3
        """,
        user_id,
        limit,
        offset,
    )
    return [_record(r) for r in rows]


async def get_token(
    conn: Connection, token_id: UUID, *, visible_to: UUID | None = None
) -> TokenRecord:
    """One token; :class:`NotFound` when it does not exist or ``visible_to`` does not own it."""
    row = await conn.fetchrow(_SELECT + " WHERE t.id = $1", token_id)
    if row is None or (visible_to is not None and row["user_id"] != visible_to):
        raise NotFound("no such token")
    return _record(row)


async def revoke_token(
    conn: Connection,
    actor: Actor,
    token_id: UUID,
    *,
    visible_to: UUID | None = None,
    now: datetime | None = None,
) -> tuple[TokenRecord, bool]:
    """Revoke a token; return it and whether this call revoked it (``False``: it already was).

    ``visible_to`` limits the call to that user's tokens; another user's token is
    :class:`NotFound`, so the answer does not reveal that it exists.
    """
    now = now or datetime.now(UTC)
    async with conn.transaction():
        row = await conn.fetchrow(_SELECT + " WHERE t.id = $1 FOR UPDATE OF t", token_id)
        if row is None or (visible_to is not None and row["user_id"] != visible_to):
            raise NotFound("no such token")
        if row["revoked_at"] is not None:
            return _record(row), False
        revoked_at = await conn.fetchval(
            "UPDATE api_token SET revoked_at = greatest($2, created_at) WHERE id = $1 "
            "RETURNING revoked_at",
            token_id,
            now,
        )
        record = dataclasses.replace(_record(row), revoked_at=revoked_at)
        await conn.execute(
            "INSERT INTO revocation_outbox (token_id, public_id) VALUES ($1, $2)",
            token_id,
            record.public_id,
        )
        await record_event(
            conn,
            actor,
            "token.revoke",
            target_type="api_token",
            target_id=token_id,
            details={"ownerId": str(record.user_id), "scope": record.scope.value},
        )
    return record, True
