"""Organisation-admin status, and what losing it (or a workspace admin role) does to tokens.

A WORKSPACE token holds its owner's workspace-admin powers and an ORGANIZATION token their
organisation-admin powers. Those are checked when the token is made; so that a token never
outlives the role it relied on, every change that takes the role away revokes the tokens, in
the same transaction, with audit events and revocation announcements (see
:func:`introspector.revoking.revoke_role_tokens`). Introspection then needs no membership
lookup on its hot path.
"""

from __future__ import annotations

from introspector.audit import AuditAction, record_event
from introspector.db import Connection
from introspector.models import Actor, User
from introspector.revoking import revoke_role_tokens
from keygate_core.scopes import Scope


async def set_org_admin(conn: Connection, actor: Actor, user: User, *, is_admin: bool) -> int:
    """Make ``user`` an organisation admin or not; clearing it revokes their ORGANIZATION
    tokens (and what those minted). Returns how many tokens were revoked."""
    async with conn.transaction():
        was_admin = await conn.fetchval(
            "SELECT is_admin FROM users WHERE id = $1 FOR UPDATE", user.id
        )
        await conn.execute("UPDATE users SET is_admin = $2 WHERE id = $1", user.id, is_admin)
        revoked = 0
        if was_admin and not is_admin:
            revoked = await revoke_role_tokens(
                conn, actor, user_id=user.id, scope=Scope.ORGANIZATION
            )
        if was_admin != is_admin:
            await record_event(
                conn,
                actor,
                AuditAction.USER_SET_ADMIN,
                target_type="user",
                target_id=user.id,
                details={"isAdmin": is_admin, "revokedTokens": revoked},
            )
    return revoked
