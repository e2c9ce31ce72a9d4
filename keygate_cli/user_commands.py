"""The ``keygate users`` commands: create and link people, their roles, and their lifecycle.

Deactivating someone commits, in one transaction, the deactivation, the revocation of their
tokens, the end of their sessions and the audit event (see :mod:`introspector.user_lifecycle`).
The CLI has no Redis: the running introspector hears of the commit at once (a Postgres NOTIFY)
and tells every gateway, so the person's tokens are refused within milliseconds.
"""

from __future__ import annotations

import json
import secrets
import sys
from datetime import UTC

import asyncpg

from introspector import privileges, user_lifecycle, users
from introspector.user_lifecycle import UserSummary
from keygate_cli.invocation import Invocation, UsageError

#: ``--generate``: 144 random bits, as 24 URL-safe characters.
GENERATED_PASSWORD_BYTES = 18


async def users_create(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate users create``: print the new person's id."""
    args = call.args
    password = None
    if args.password_stdin:
        password = call.stdin.readline().rstrip("\r\n")
    user = await users.create_user(
        conn, call.hasher, call.actor, email=args.email, password=password, is_admin=args.admin
    )
    print(user.id)
    return 0


async def users_link(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate users link``: make a person the keygate identity of an app account."""
    args = call.args
    user = await users.link_external(
        conn, call.actor, email=args.email, external_id=args.external_id
    )
    print(f"{user.email} is now the app's user {args.external_id.strip()}", file=sys.stderr)
    return 0


async def users_set_admin(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate users set-admin``: set or clear the organisation-admin flag."""
    user = await users.get_user_by_email(conn, call.args.email)
    revoked = await privileges.set_org_admin(conn, call.actor, user, is_admin=call.args.admin)
    state = "an organisation admin" if call.args.admin else "not an organisation admin"
    print(f"{user.email} is {state}; {revoked} token(s) revoked", file=sys.stderr)
    return 0


async def users_list(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate users list``: everyone, by e-mail, as a table or one JSON object per line."""
    people: list[UserSummary] = []
    while page := await user_lifecycle.list_users(conn, limit=500, offset=len(people)):
        people.extend(page)
    if call.args.json:
        for person in people:
            print(json.dumps(person.to_json()))
        return 0
    rows = [
        [
            p.email,
            str(p.id),
            "admin" if p.is_admin else "-",
            "deactivated" if p.deactivated_at else "active",
            "yes" if p.has_password else "no",
            str(p.live_tokens),
            p.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        ]
        for p in people
    ]
    header = ["EMAIL", "ID", "ADMIN", "STATUS", "PASSWORD", "LIVE TOKENS", "CREATED"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if not people:
        print("there are no users yet", file=sys.stderr)
    return 0


async def users_set_password(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate users set-password``: set a password from stdin, or generate one and print it
    (once, on stdout); every session of the person ends."""
    args = call.args
    if args.generate:
        password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    else:
        password = call.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: standard input held no password")
    user = await users.get_user_by_email(conn, args.email)
    await user_lifecycle.set_password(conn, call.hasher, call.actor, user.id, password)
    if args.generate:
        print(password)
    state = " (the account stays deactivated)" if user.deactivated_at else ""
    print(f"password of {user.email} set; their sessions are ended{state}", file=sys.stderr)
    return 0


async def users_deactivate(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate users deactivate``: offboard a person (tokens revoked, sessions ended)."""
    user = await users.get_user_by_email(conn, call.args.email)
    if user.deactivated_at is not None:
        print(f"{user.email} was already deactivated", file=sys.stderr)
        return 0
    _, revoked = await user_lifecycle.deactivate(conn, call.actor, user.id)
    print(
        f"{user.email} is deactivated; {revoked} token(s) revoked, sessions ended",
        file=sys.stderr,
    )
    return 0


async def users_reactivate(conn: asyncpg.Connection, call: Invocation) -> int:
    """``keygate users reactivate``: let a person sign in again (revoked tokens stay so)."""
    user = await users.get_user_by_email(conn, call.args.email)
    if user.deactivated_at is None:
        print(f"{user.email} was already active", file=sys.stderr)
        return 0
    await user_lifecycle.reactivate(conn, call.actor, user.id)
    print(f"{user.email} can sign in again; their revoked tokens stay revoked", file=sys.stderr)
    return 0
