"""How an ``api_token`` row is read: the one SELECT and its mapping to :class:`TokenRecord`."""

from __future__ import annotations

import asyncpg

from introspector.models import TokenRecord
from keygate_core.scopes import Scope

#: Every column of a token but its hash, with the owner's e-mail; callers append the WHERE.
SELECT_TOKEN = """
    SELECT t.id, t.public_id, t.user_id, u.email AS user_email, t.workspace_id, t.name,
           t.scope::text AS scope, t.rate_limit, t.created_at, t.last_used_at, t.expires_at,
           t.revoked_at, t.parent_id
    FROM api_token t JOIN users u ON u.id = t.user_id
"""


def token_record(row: asyncpg.Record) -> TokenRecord:
    """The record of a row selected with :data:`SELECT_TOKEN` (or the same columns)."""
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
        parent_id=row["parent_id"],
    )
