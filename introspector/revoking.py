"""Revoking tokens: one token with everything it minted, or every token a lost role carried.

Each revoked token gets, in the caller's transaction, its ``revoked_at``, a revocation outbox row
(so gateways drop it from their caches, see :mod:`introspector.revocation`) and a ``token.revoke``
audit event. A token minted by another token dies with it: the revocation follows ``parent_id``
down to every descendant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from introspector.audit import AuditAction, record_event
from introspector.db import Connection
from introspector.errors import NotFound
from introspector.models import Actor, TokenRecord
from introspector.token_rows import SELECT_TOKEN, token_record
from keygate_core.scopes import Scope

_REVOKE_TREE = """
    WITH RECURSIVE tree AS (
        SELECT id FROM api_token WHERE id = ANY($1::uuid[])
        UNION
        SELECT c.id FROM api_token c JOIN tree ON c.parent_id = tree.id
    )
    UPDATE api_token t SET revoked_at = greatest($2, t.created_at)
    FROM tree WHERE t.id = tree.id AND t.revoked_at IS NULL
    RETURNING t.id, t.public_id, t.user_id, t.scope::text AS scope, t.parent_id, t.revoked_at
"""


async def revoke_tree(
    conn: Connection,
    actor: Actor,
    roots: Sequence[UUID],
    *,
    now: datetime,
    reason: str | None = None,
) -> dict[UUID, datetime]:
    """Revoke ``roots`` and all their descendants that are still live; return when each was.

    Runs until nothing is left: a child committed by a concurrent mint while this statement
    waited for its parent's row lock is not in the first statement's snapshot, but is in the
    next one (its parent is revoked by then, so no further child can appear).
    """
    revoked: dict[UUID, datetime] = {}
    async with conn.transaction():
        while True:
            rows = await conn.fetch(_REVOKE_TREE, list(roots), now)
            if not rows:
                return revoked
            for row in rows:
                revoked[row["id"]] = row["revoked_at"]
                await conn.execute(
                    "INSERT INTO revocation_outbox (token_id, public_id) VALUES ($1, $2)",
                    row["id"],
                    row["public_id"],
                )
                details: dict[str, Any] = {"ownerId": str(row["user_id"]), "scope": row["scope"]}
                if row["id"] not in roots:
                    details |= {"reason": "parent_revoked", "parentId": str(row["parent_id"])}
                elif reason is not None:
                    details["reason"] = reason
                await record_event(
                    conn,
                    actor,
                    AuditAction.TOKEN_REVOKE,
                    target_type="api_token",
                    target_id=row["id"],
                    details=details,
                )


async def revoke_token(
    conn: Connection,
    actor: Actor,
    token_id: UUID,
    *,
    visible_to: UUID | None = None,
    now: datetime | None = None,
) -> tuple[TokenRecord, bool]:
    """Revoke a token and what it minted; return it and whether this call revoked it.

    ``visible_to`` limits the call to that user's tokens; another user's token is
    :class:`NotFound`, so the answer does not reveal that it exists.
    """
    now = now or datetime.now(UTC)
    async with conn.transaction():
        row = await conn.fetchrow(SELECT_TOKEN + " WHERE t.id = $1 FOR UPDATE OF t", token_id)
        if row is None or (visible_to is not None and row["user_id"] != visible_to):
            raise NotFound("no such token")
        if row["revoked_at"] is not None:
            return token_record(row), False
        revoked = await revoke_tree(conn, actor, [token_id], now=now)
    return dataclasses.replace(token_record(row), revoked_at=revoked[token_id]), True


async def revoke_role_tokens(
    conn: Connection,
    actor: Actor,
    *,
    user_id: UUID,
    scope: Scope,
    workspace_id: UUID | None = None,
    now: datetime | None = None,
) -> int:
    """Revoke ``user_id``'s live ``scope`` tokens (of ``workspace_id`` when given) and what they
    minted, because the role they relied on is gone; return how many tokens were revoked."""
    async with conn.transaction():
        ids = await conn.fetch(
            "SELECT id FROM api_token WHERE user_id = $1 AND scope = $2::token_scope "
            "AND ($3::uuid IS NULL OR workspace_id = $3) AND revoked_at IS NULL FOR UPDATE",
            user_id,
            scope.value,
            workspace_id,
        )
        if not ids:
            return 0
        revoked = await revoke_tree(
            conn, actor, [r["id"] for r in ids], now=now or datetime.now(UTC), reason="role_lost"
        )
    return len(revoked)
