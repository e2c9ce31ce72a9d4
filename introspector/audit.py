"""The append-only audit log: every change records who did it, when, from where, and to what."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from introspector.db import Connection
from introspector.models import Actor


class AuditAction(enum.Enum):
    """Every action the audit log records, in one place: ``record_event`` takes only these, and
    the actions table in docs/security-model.md is checked against this list."""

    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    USER_CREATE = "user.create"
    USER_CREATE_EXTERNAL = "user.create_external"
    USER_LINK_EXTERNAL = "user.link_external"
    USER_SET_ADMIN = "user.set_admin"
    USER_SET_PASSWORD = "user.set_password"
    USER_DEACTIVATE = "user.deactivate"
    USER_REACTIVATE = "user.reactivate"
    WORKSPACE_CREATE = "workspace.create"
    WORKSPACE_ADD_MEMBER = "workspace.add_member"
    WORKSPACE_REMOVE_MEMBER = "workspace.remove_member"


@dataclass(frozen=True)
class AuditEvent:
    """One row of the audit log."""

    id: int
    occurred_at: datetime
    actor_kind: str
    actor_user_id: UUID | None
    actor_token_id: UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    source_ip: str | None
    request_id: str | None
    details: dict[str, Any]


async def record_event(
    conn: Connection,
    actor: Actor,
    action: AuditAction,
    *,
    target_type: str | None = None,
    target_id: object = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event. Call inside the transaction of the change it describes."""
    await conn.execute(
        """
        INSERT INTO audit_event (actor_kind, actor_user_id, actor_token_id, action,
                                 target_type, target_id, source_ip, request_id, details)
        VALUES ($1, $2, $3, $4, $5, $6, $7::inet, $8, $9::jsonb)
        """,
        actor.kind.value,
        actor.user_id,
        actor.token_id,
        action.value,
        target_type,
        None if target_id is None else str(target_id),
        actor.source_ip,
        actor.request_id,
        json.dumps(details or {}, default=str),
    )


async def list_events(
    conn: Connection, *, limit: int = 50, before_id: int | None = None
) -> list[AuditEvent]:
    """Newest first; pass the last id seen as ``before_id`` for the next page."""
    rows = await conn.fetch(
        """
        SELECT id, occurred_at, actor_kind, actor_user_id, actor_token_id, action, target_type,
               target_id, host(source_ip) AS source_ip, request_id, details
        FROM audit_event
        WHERE $1::bigint IS NULL OR id < $1
        ORDER BY id DESC
        LIMIT $2
        """,
        before_id,
        limit,
    )
    return [
        AuditEvent(
            id=r["id"],
            occurred_at=r["occurred_at"],
            actor_kind=r["actor_kind"],
            actor_user_id=r["actor_user_id"],
            actor_token_id=r["actor_token_id"],
            action=r["action"],
            target_type=r["target_type"],
            target_id=r["target_id"],
            source_ip=r["source_ip"],
            request_id=r["request_id"],
            details=json.loads(r["details"]),
        )
        for r in rows
    ]
