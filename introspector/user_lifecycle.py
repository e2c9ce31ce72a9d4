"""The user lifecycle: list people, set a password, deactivate and reactivate.

Shared by the management API and the ``keygate`` CLI. Deactivation is offboarding: in one
transaction it marks the person deactivated, revokes every live token of theirs (and what those
minted, see :func:`introspector.revoking.revoke_tree`), queues the end of all their sessions
(``session_purge_outbox``, delivered by :mod:`introspector.revocation`) and writes the audit
event. A password change ends their sessions the same way. Reactivation restores sign-in only:
revoked tokens stay revoked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from introspector.audit import AuditAction, record_event
from introspector.db import Connection
from introspector.errors import Conflict, InvalidInput, NotFound
from introspector.hashing import SecretHasher
from introspector.models import Actor
from introspector.revoking import revoke_tree
from introspector.users import MIN_PASSWORD_LENGTH

_SUMMARY = """
    SELECT u.id, u.email, u.is_admin, u.created_at, u.deactivated_at,
           u.password_hash IS NOT NULL AS has_password, u.external_id,
           (SELECT count(*) FROM api_token t WHERE t.user_id = u.id AND t.revoked_at IS NULL
              AND (t.expires_at IS NULL OR t.expires_at > now())) AS live_tokens
    FROM users u
"""


class UserStatus(enum.Enum):
    """The ``status`` filter of the user list."""

    ACTIVE = "active"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True)
class UserSummary:
    """A person as an admin sees them (never a password or its hash)."""

    id: UUID
    email: str
    is_admin: bool
    created_at: datetime
    deactivated_at: datetime | None
    has_password: bool
    external_id: str | None
    live_tokens: int

    def to_json(self) -> dict[str, Any]:
        """The API's user object."""
        return {
            "id": str(self.id),
            "email": self.email,
            "isAdmin": self.is_admin,
            "createdAt": self.created_at.isoformat(),
            "deactivatedAt": _iso(self.deactivated_at),
            "hasPassword": self.has_password,
            "externalId": self.external_id,
            "liveTokens": self.live_tokens,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _summary(row: Any) -> UserSummary:
    return UserSummary(
        id=row["id"],
        email=row["email"],
        is_admin=row["is_admin"],
        created_at=row["created_at"],
        deactivated_at=row["deactivated_at"],
        has_password=row["has_password"],
        external_id=row["external_id"],
        live_tokens=row["live_tokens"],
    )


async def list_users(
    conn: Connection,
    *,
    limit: int = 50,
    offset: int = 0,
    email_contains: str | None = None,
    status: UserStatus | None = None,
) -> list[UserSummary]:
    """People ordered by e-mail; only those whose e-mail contains ``email_contains`` and only
    those in ``status`` when given."""
    rows = await conn.fetch(
        _SUMMARY
        + """
        WHERE ($1::text IS NULL OR strpos(u.email, lower($1)) > 0)
          AND ($2::text IS NULL OR (u.deactivated_at IS NULL) = ($2 = 'active'))
        ORDER BY u.email
        LIMIT $3 OFFSET $4
        """,
        email_contains,
        None if status is None else status.value,
        limit,
        offset,
    )
    return [_summary(r) for r in rows]


async def user_summary(conn: Connection, user_id: UUID) -> UserSummary:
    """One person, or :class:`NotFound`."""
    row = await conn.fetchrow(_SUMMARY + " WHERE u.id = $1", user_id)
    if row is None:
        raise NotFound("no such user")
    return _summary(row)


async def _lock_user(conn: Connection, user_id: UUID) -> Any:
    row = await conn.fetchrow(
        "SELECT id, email, deactivated_at FROM users WHERE id = $1 FOR UPDATE", user_id
    )
    if row is None:
        raise NotFound("no such user")
    return row


async def set_password(
    conn: Connection, hasher: SecretHasher, actor: Actor, user_id: UUID, password: str
) -> None:
    """Set or reset ``user_id``'s password and end all their sessions; audited as
    ``user.set_password``. A deactivated person stays deactivated."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"must be at least {MIN_PASSWORD_LENGTH} characters", field="password")
    await user_summary(conn, user_id)  # 404 before spending argon2 time
    password_hash = await hasher.hash_async(password)
    async with conn.transaction():
        row = await _lock_user(conn, user_id)
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
        )
        await conn.execute("INSERT INTO session_purge_outbox (user_id) VALUES ($1)", user_id)
        await record_event(
            conn,
            actor,
            AuditAction.USER_SET_PASSWORD,
            target_type="user",
            target_id=user_id,
            details={"email": row["email"]},
        )


async def deactivate(conn: Connection, actor: Actor, user_id: UUID) -> tuple[UserSummary, int]:
    """Deactivate ``user_id``, revoke their live tokens and end their sessions, in one
    transaction; return them and how many tokens were revoked. Already deactivated: nothing
    changes (0). Nobody deactivates themselves (:class:`Conflict` on ``userId``): an admin
    locking themselves out by a slip is worse than asking another admin."""
    if actor.user_id == user_id:
        raise Conflict("you cannot deactivate your own account", field="userId")
    async with conn.transaction():
        row = await _lock_user(conn, user_id)
        if row["deactivated_at"] is not None:
            return await user_summary(conn, user_id), 0
        now = datetime.now(UTC)
        await conn.execute("UPDATE users SET deactivated_at = $2 WHERE id = $1", user_id, now)
        live = await conn.fetch(
            "SELECT id FROM api_token WHERE user_id = $1 AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > $2) FOR UPDATE",
            user_id,
            now,
        )
        revoked = await revoke_tree(
            conn, actor, [r["id"] for r in live], now=now, reason="user_deactivated"
        )
        await conn.execute("INSERT INTO session_purge_outbox (user_id) VALUES ($1)", user_id)
        await record_event(
            conn,
            actor,
            AuditAction.USER_DEACTIVATE,
            target_type="user",
            target_id=user_id,
            details={"email": row["email"], "revokedTokens": len(revoked)},
        )
        return await user_summary(conn, user_id), len(revoked)


async def reactivate(conn: Connection, actor: Actor, user_id: UUID) -> UserSummary:
    """Let ``user_id`` sign in again (their password is kept; revoked tokens stay revoked);
    audited as ``user.reactivate``. Already active: nothing changes."""
    async with conn.transaction():
        row = await _lock_user(conn, user_id)
        if row["deactivated_at"] is None:
            return await user_summary(conn, user_id)
        await conn.execute("UPDATE users SET deactivated_at = NULL WHERE id = $1", user_id)
        await record_event(
            conn,
            actor,
            AuditAction.USER_REACTIVATE,
            target_type="user",
            target_id=user_id,
            details={"email": row["email"]},
        )
        return await user_summary(conn, user_id)
