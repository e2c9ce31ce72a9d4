"""The operator commands: one function per ``keygate`` command that works on the database.

Each gets an open connection and the :class:`Invocation` (the parsed arguments, the settings, a
hasher built from them, standard input) and returns the exit code. They call the same service
layer as the HTTP API, acting as the operator. What a script captures goes to stdout (an id, the
plaintext token, a listing); everything meant for people goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TextIO
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from introspector import tokens, users, workspaces
from introspector.db import DATABASE_UNAVAILABLE, writable_server
from introspector.errors import KeygateError
from introspector.hashing import SecretHasher
from introspector.migrate import migrate
from introspector.models import Role
from introspector.settings import IntrospectorSettings
from keygate_cli.invocation import Command, Invocation
from keygate_cli.invocation import UsageError as UsageError
from keygate_cli.user_commands import (
    users_create,
    users_deactivate,
    users_link,
    users_list,
    users_reactivate,
    users_set_admin,
    users_set_password,
)
from keygate_core.scopes import Scope

_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``1w2d``, ``30m``… → a positive timedelta."""
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise UsageError(f"--expires-in: {text!r} is not a duration like 30d, 12h or 1w2d")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError("--expires-in: must be longer than zero")
    if seconds > 10 * 365 * 86400:
        raise UsageError("--expires-in: must be at most ten years")
    return timedelta(seconds=seconds)


async def migrate_database(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate migrate``: apply pending migrations; say which (or that none were due)."""
    applied = await migrate(conn)
    print(
        f"applied migrations: {applied}" if applied else "database is up to date",
        file=sys.stderr,
    )
    return 0


async def workspaces_create(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate workspaces create``: print the new workspace's id."""
    workspace = await workspaces.create_workspace(conn, call.actor, name=call.args.name)
    print(workspace.id)
    return 0


async def workspaces_add_member(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate workspaces add-member``: give a person a role in a workspace."""
    args = call.args
    workspace = await workspaces.find_workspace(conn, args.workspace)
    user = await users.get_user_by_email(conn, args.email)
    await workspaces.add_member(conn, call.actor, workspace, user, Role(args.role))
    print(f"{user.email} is {args.role} of {workspace.name}", file=sys.stderr)
    return 0


async def workspaces_remove_member(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate workspaces remove-member``: take a person out of a workspace."""
    workspace = await workspaces.find_workspace(conn, call.args.workspace)
    user = await users.get_user_by_email(conn, call.args.email)
    await workspaces.remove_member(conn, call.actor, workspace, user)
    print(f"{user.email} is no longer a member of {workspace.name}", file=sys.stderr)
    return 0


async def tokens_create(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate tokens create``: print the plaintext token, and nothing else, on stdout."""
    args = call.args
    owner = await users.get_user_by_email(conn, args.email)
    workspace_id = None
    if args.workspace:
        workspace_id = (await workspaces.find_workspace(conn, args.workspace)).id
    expires_at = None
    if args.expires_in:
        expires_at = datetime.now(UTC) + parse_duration(args.expires_in)
    created = await tokens.create_token(
        conn,
        call.hasher,
        call.actor,
        owner=owner,
        name=args.name,
        edition=call.settings.edition,
        scope=Scope(args.scope),
        workspace_id=workspace_id,
        expires_at=expires_at,
        rate_limit=args.rate_limit,
        max_live=call.settings.max_tokens_per_user,
    )
    print(created.plaintext)
    print(
        f"created token {created.record.id} ({created.record.display_start}…); "
        "it will not be shown again",
        file=sys.stderr,
    )
    return 0


async def tokens_list(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate tokens list``: a person's tokens as a table, or one JSON object per line."""
    owner = await users.get_user_by_email(conn, call.args.email)
    records = await tokens.list_tokens(conn, user_id=owner.id)
    now = datetime.now(UTC)
    if call.args.json:
        for r in records:
            print(json.dumps(r.to_json(now)))
        return 0
    _print_table(
        ["ID", "START", "NAME", "SCOPE", "CREATED", "LAST USED", "EXPIRES", "STATUS"],
        [
            [
                str(r.id),
                r.display_start + "…",
                r.name,
                r.scope.value,
                _when(r.created_at),
                _when(r.last_used_at, "never"),
                _when(r.expires_at, "never"),
                r.status(now).value,
            ]
            for r in records
        ],
    )
    if not records:
        print(f"{owner.email} has no tokens", file=sys.stderr)
    return 0


async def tokens_revoke(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate tokens revoke``: revoke by id; revoking twice is not an error."""
    try:
        token_id = UUID(call.args.id)
    except ValueError:
        raise UsageError(f"id: {call.args.id!r} is not a token id (a UUID)") from None
    record, revoked_now = await tokens.revoke_token(conn, call.actor, token_id)
    state = "revoked" if revoked_now else "was already revoked"
    print(f"token {record.id} ({record.display_start}…) {state}", file=sys.stderr)
    return 0


#: The operator commands by (command, action), as the parser names them.
COMMANDS: dict[tuple[str, str | None], Command] = {
    ("migrate", None): migrate_database,
    ("users", "create"): users_create,
    ("users", "link"): users_link,
    ("users", "set-admin"): users_set_admin,
    ("users", "list"): users_list,
    ("users", "set-password"): users_set_password,
    ("users", "deactivate"): users_deactivate,
    ("users", "reactivate"): users_reactivate,
    ("workspaces", "create"): workspaces_create,
    ("workspaces", "add-member"): workspaces_add_member,
    ("workspaces", "remove-member"): workspaces_remove_member,
    ("tokens", "create"): tokens_create,
    ("tokens", "list"): tokens_list,
    ("tokens", "revoke"): tokens_revoke,
}


async def run_command(
    args: argparse.Namespace, settings: IntrospectorSettings, stdin: TextIO
) -> int:
    """Run the operator command ``args`` names on one database connection; the exit code."""
    command = COMMANDS[(args.command, getattr(args, "action", None))]
    hasher = SecretHasher.from_settings(settings)
    try:
        return await _with_connection(settings, command, Invocation(args, settings, hasher, stdin))
    finally:
        hasher.close()


async def _with_connection(
    settings: IntrospectorSettings, command: Command, call: Invocation
) -> int:
    try:
        conn = await asyncpg.connect(
            settings.database_url,
            timeout=10,
            target_session_attrs=writable_server(settings.database_url),
        )
    except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as exc:
        where = _describe_database(settings.database_url)
        raise KeygateError(f"cannot reach Postgres at {where}: {type(exc).__name__}") from None
    try:
        return await command(conn, call)
    except asyncpg.UndefinedTableError:
        raise KeygateError(
            "the database has no keygate schema yet; run `keygate migrate` first"
        ) from None
    finally:
        await conn.close()


def _describe_database(url: str) -> str:
    """Hosts, ports and database of a URL, without user or password; a multi-host URL
    (``db1:5432,db2:5432``) names every host."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    named = [h if ":" in h.rpartition("]")[2] else f"{h}:5432" for h in hosts.split(",")]
    return f"{','.join(named)}{parts.path}"


def _when(value: datetime | None, missing: str = "-") -> str:
    return missing if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
