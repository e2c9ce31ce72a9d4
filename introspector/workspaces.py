"""Workspaces and their members."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from introspector.audit import AuditAction, record_event
from introspector.db import Connection
from introspector.errors import Conflict, InvalidInput, NotFound
from introspector.models import Actor, Role, User, Workspace
from introspector.revoking import revoke_role_tokens
from keygate_core.scopes import Scope

_ROLE = "SELECT role::text FROM workspace_members WHERE workspace_id = $1 AND user_id = $2"
_LOCKED_ROLE = _ROLE + " FOR UPDATE"


def _workspace(row: asyncpg.Record) -> Workspace:
    return Workspace(id=row["id"], name=row["name"], created_at=row["created_at"])


def clean_workspace_name(name: str) -> str:
    """A trimmed workspace name of 1–100 printable characters."""
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= 100 or not cleaned.isprintable():
        raise InvalidInput("must be 1 to 100 printable characters", field="name")
    return cleaned


async def create_workspace(conn: Connection, actor: Actor, *, name: str) -> Workspace:
    """Create a workspace with a unique (case-insensitive) name."""
    name = clean_workspace_name(name)
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                "INSERT INTO workspaces (name) VALUES ($1) RETURNING id, name, created_at", name
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("a workspace with this name already exists", field="name") from None
        assert row is not None
        workspace = _workspace(row)
        await record_event(
            conn,
            actor,
            AuditAction.WORKSPACE_CREATE,
            target_type="workspace",
            target_id=workspace.id,
            details={"name": name},
        )
    return workspace


async def find_workspace(conn: Connection, name_or_id: str) -> Workspace:
    """A workspace by id or (case-insensitive) name, or :class:`NotFound` on ``workspace``."""
    try:
        workspace_id: UUID | None = UUID(name_or_id)
    except ValueError:
        workspace_id = None
    if workspace_id is not None:
        row = await conn.fetchrow(
            "SELECT id, name, created_at FROM workspaces WHERE id = $1", workspace_id
        )
    else:
        row = await conn.fetchrow(
            "SELECT id, name, created_at FROM workspaces WHERE lower(name) = lower($1)",
            name_or_id.strip(),
        )
    if row is None:
        raise NotFound("no such workspace", field="workspace")
    return _workspace(row)


async def add_member(
    conn: Connection, actor: Actor, workspace: Workspace, user: User, role: Role
) -> None:
    """Add ``user`` to ``workspace`` with ``role``, or change the role of an existing member.

    Demoting an admin to member revokes their WORKSPACE tokens of this workspace (and what
    those minted) in the same transaction: the tokens relied on the admin role.
    """
    async with conn.transaction():
        before = await role_in(conn, workspace.id, user.id, for_update=True)
        await conn.execute(
            """
            INSERT INTO workspace_members (workspace_id, user_id, role)
            VALUES ($1, $2, $3::workspace_role)
            ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = EXCLUDED.role
            """,
            workspace.id,
            user.id,
            role.value,
        )
        await record_event(
            conn,
            actor,
            AuditAction.WORKSPACE_ADD_MEMBER,
            target_type="workspace",
            target_id=workspace.id,
            details={"userId": str(user.id), "role": role.value},
        )
        if before is Role.ADMIN and role is not Role.ADMIN:
            await revoke_role_tokens(
                conn, actor, user_id=user.id, scope=Scope.WORKSPACE, workspace_id=workspace.id
            )


async def remove_member(conn: Connection, actor: Actor, workspace: Workspace, user: User) -> None:
    """Take ``user`` out of ``workspace``, revoking their WORKSPACE tokens of it (and what those
    minted) in the same transaction. Removing a non-member is :class:`NotFound`."""
    async with conn.transaction():
        removed = await conn.fetchval(
            "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2 "
            "RETURNING role::text",
            workspace.id,
            user.id,
        )
        if removed is None:
            raise NotFound("the person is not a member of this workspace", field="email")
        await record_event(
            conn,
            actor,
            AuditAction.WORKSPACE_REMOVE_MEMBER,
            target_type="workspace",
            target_id=workspace.id,
            details={"userId": str(user.id)},
        )
        await revoke_role_tokens(
            conn, actor, user_id=user.id, scope=Scope.WORKSPACE, workspace_id=workspace.id
        )


async def role_in(
    conn: Connection, workspace_id: UUID, user_id: UUID, *, for_update: bool = False
) -> Role | None:
    """``user_id``'s role in ``workspace_id``, or ``None`` when not a member (``for_update``:
    and lock the membership row until the transaction ends)."""
    role = await conn.fetchval(_LOCKED_ROLE if for_update else _ROLE, workspace_id, user_id)
    return None if role is None else Role(role)
