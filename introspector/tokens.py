"""The token service: create, list and revoke API tokens (revoking lives in
:mod:`introspector.revoking`, re-exported here).

Used by the operator CLI and the HTTP API alike. Creating and revoking each commit their audit
event in the same transaction, so the log never misses a change and never records one that did
not happen. A token minted by another token records it as its parent and dies with it. The
plaintext exists only in :class:`CreatedToken`; the database holds the argon2id hash of the
secret part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from introspector.audit import AuditAction, record_event
from introspector.db import Connection
from introspector.errors import Conflict, NotFound, Unauthenticated
from introspector.hashing import SecretHasher
from introspector.models import Actor, CreatedToken, TokenRecord, User
from introspector.revoking import revoke_token as revoke_token
from introspector.settings import Edition
from introspector.token_rows import SELECT_TOKEN, token_record
from introspector.token_rules import NewToken as NewToken
from introspector.token_rules import check_new_token as check_new_token
from introspector.token_rules import clean_token_name as clean_token_name
from keygate_core.scopes import Scope
from keygate_core.token_format import generate_token

_INSERT = """
    WITH inserted AS (
        INSERT INTO api_token (public_id, user_id, workspace_id, name, token_hash, scope,
                               rate_limit, expires_at, created_at, parent_id, secret_verifier,
                               secret_verifier_key_id)
        VALUES ($1, $2, $3, $4, $5, $6::token_scope, $7, $8, $9, $11, $12, $13)
        RETURNING *
    )
    SELECT t.id, t.public_id, t.user_id, $10::text AS user_email, t.workspace_id, t.name,
           t.scope::text AS scope, t.rate_limit, t.created_at, t.last_used_at,
           t.expires_at, t.revoked_at, t.parent_id
    FROM inserted t
"""


async def _lock_owner(conn: Connection, new: NewToken) -> NewToken:
    """Lock the owner's row (and membership) until the insert commits; ``new`` with the owner's
    current admin flag.

    The owner's row lock serialises the live-token cap and waits for (or holds off) a change
    of the admin flag or a deactivation (no token is ever made for a deactivated person, so
    introspection needs no check of its owner); the membership lock does the same for a
    demotion. So a token is never inserted on a role that a committed demotion has already
    taken away, and a demotion's revocation always sees a token committed before it.
    """
    owner = await conn.fetchrow(
        "SELECT is_admin, deactivated_at FROM users WHERE id = $1 FOR NO KEY UPDATE", new.owner.id
    )
    if owner is None:
        raise Unauthenticated("the signed-in user no longer exists")
    if owner["deactivated_at"] is not None:
        raise Conflict("this person is deactivated; no token can be made for them", field="email")
    is_admin = owner["is_admin"]
    if new.workspace_id is not None:
        await conn.execute(
            "SELECT 1 FROM workspace_members WHERE workspace_id = $1 AND user_id = $2 FOR SHARE",
            new.workspace_id,
            new.owner.id,
        )
    return dataclasses.replace(new, owner=dataclasses.replace(new.owner, is_admin=is_admin))


async def _check_parent_live(conn: Connection, parent_id: UUID, now: datetime) -> None:
    """Refuse a child of a token revoked (or expired) since the request began.

    ``FOR SHARE`` makes a concurrent revoke of the parent wait for this insert, so the revoke's
    cascade sees the child.
    """
    row = await conn.fetchrow(
        "SELECT revoked_at, expires_at FROM api_token WHERE id = $1 FOR SHARE", parent_id
    )
    if row is None or row["revoked_at"] is not None:
        raise Unauthenticated("the API token is not valid")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        raise Unauthenticated("the API token is not valid")


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
    max_live: int | None = None,
) -> CreatedToken:
    """Create a token for ``owner`` on one connection (the operator's path: the HTTP API hashes
    between two short borrows instead); the result carries the plaintext exactly once."""
    new = NewToken(owner, clean_token_name(name), scope, workspace_id, expires_at, rate_limit)
    now = now or datetime.now(UTC)
    await check_new_token(conn, edition, new, now, max_live)
    # argon2 runs before the transaction opens: no row lock is held while hashing.
    hashed = await hash_new_token(hasher)
    return await insert_token(conn, actor, new, hashed, edition, now, max_live)


@dataclass(frozen=True, repr=False)
class HashedToken:
    """A fresh token and the argon2id hash of its secret, made before any row is locked."""

    plaintext: str
    public_id: str
    token_hash: str
    #: The fast keyed verifier of the secret and its key id (see :mod:`introspector.hashing`).
    verifier: str | None
    verifier_key_id: str | None


async def hash_new_token(hasher: SecretHasher) -> HashedToken:
    """A fresh token with its secret hashed (needs no database connection)."""
    plaintext, parts = generate_token()
    token_hash = await hasher.hash_async(parts.secret)
    mac = hasher.token_verifier
    if mac is None:
        return HashedToken(plaintext, parts.public_id, token_hash, None, None)
    return HashedToken(plaintext, parts.public_id, token_hash, mac.sign(parts.secret), mac.key_id)


async def insert_token(
    conn: Connection,
    actor: Actor,
    new: NewToken,
    hashed: HashedToken,
    edition: Edition,
    now: datetime,
    max_live: int | None,
) -> CreatedToken:
    """Store ``new`` with its audit event, re-checking everything inside the transaction (see
    :func:`_lock_owner`); the parent must still be live."""
    async with conn.transaction():
        new = await _lock_owner(conn, new)
        await check_new_token(conn, edition, new, now, max_live)
        if new.parent_id is not None:
            await _check_parent_live(conn, new.parent_id, now)
        row = await conn.fetchrow(
            _INSERT,
            hashed.public_id,
            new.owner.id,
            new.workspace_id,
            new.name,
            hashed.token_hash,
            new.scope.value,
            new.rate_limit,
            new.expires_at,
            now,
            new.owner.email,
            new.parent_id,
            hashed.verifier,
            hashed.verifier_key_id,
        )
        assert row is not None
        record = token_record(row)
        await record_event(
            conn,
            actor,
            AuditAction.TOKEN_CREATE,
            target_type="api_token",
            target_id=record.id,
            details=_create_details(new, record),
        )
    return CreatedToken(record=record, plaintext=hashed.plaintext)


def _create_details(new: NewToken, record: TokenRecord) -> dict[str, Any]:
    def text(value: object | None) -> str | None:
        return None if value is None else str(value)

    return {
        "ownerId": str(new.owner.id),
        "name": new.name,
        "scope": new.scope.value,
        "workspaceId": text(new.workspace_id),
        "expiresAt": None if new.expires_at is None else new.expires_at.isoformat(),
        "rateLimit": new.rate_limit,
        "parentId": text(new.parent_id),
        "start": record.display_start,
    }


async def list_tokens(
    conn: Connection,
    *,
    user_id: UUID | None,
    limit: int = 100,
    offset: int = 0,
    scopes: Sequence[Scope] | None = None,
    workspace_id: UUID | None = None,
) -> list[TokenRecord]:
    """Tokens of ``user_id`` (or everyone's when ``None``), newest first; only ``scopes`` and
    only tokens bound to ``workspace_id`` when those are given."""
    rows = await conn.fetch(
        SELECT_TOKEN
        + """
        WHERE ($1::uuid IS NULL OR t.user_id = $1)
          AND ($4::text[] IS NULL OR t.scope::text = ANY($4::text[]))
          AND ($5::uuid IS NULL OR t.workspace_id = $5)
        ORDER BY t.created_at DESC, t.id
        LIMIT $2 OFFSET $3
        """,
        user_id,
        limit,
        offset,
        None if scopes is None else [s.value for s in scopes],
        workspace_id,
    )
    return [token_record(r) for r in rows]


async def get_token(
    conn: Connection, token_id: UUID, *, visible_to: UUID | None = None
) -> TokenRecord:
    """One token; :class:`NotFound` when it does not exist or ``visible_to`` does not own it."""
    row = await conn.fetchrow(SELECT_TOKEN + " WHERE t.id = $1", token_id)
    if row is None or (visible_to is not None and row["user_id"] != visible_to):
        raise NotFound("no such token")
    return token_record(row)
