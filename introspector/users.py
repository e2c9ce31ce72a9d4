"""People: creation, lookup and e-mail normalisation."""

from __future__ import annotations

import re
from uuid import UUID

import asyncpg

from introspector.audit import AuditAction, record_event
from introspector.db import Connection
from introspector.errors import Conflict, InvalidInput, NotFound
from introspector.hashing import SecretHasher
from introspector.models import Actor, Membership, Role, User

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8


def normalise_email(email: str) -> str:
    """Lower-cased, trimmed e-mail; :class:`InvalidInput` on ``email`` when it is not one."""
    cleaned = email.strip().lower()
    if not _EMAIL.match(cleaned) or len(cleaned) > 254:
        raise InvalidInput("not a valid e-mail address", field="email")
    return cleaned


def user_of(row: asyncpg.Record) -> User:
    """The :class:`User` of a row with ``id, email, is_admin, created_at, deactivated_at``."""
    return User(
        id=row["id"],
        email=row["email"],
        is_admin=row["is_admin"],
        created_at=row["created_at"],
        deactivated_at=row["deactivated_at"],
    )


async def create_user(
    conn: Connection,
    hasher: SecretHasher,
    actor: Actor,
    *,
    email: str,
    password: str | None = None,
    is_admin: bool = False,
) -> User:
    """Create a person; the password (optional: SSO-only people have none) is argon2id-hashed."""
    email = normalise_email(email)
    password_hash = None
    if password is not None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(
                f"must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
            )
        password_hash = await hasher.hash_async(password)
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                "INSERT INTO users (email, password_hash, is_admin) VALUES ($1, $2, $3) "
                "RETURNING id, email, is_admin, created_at, deactivated_at",
                email,
                password_hash,
                is_admin,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("a user with this e-mail already exists", field="email") from None
        assert row is not None
        user = user_of(row)
        await record_event(
            conn,
            actor,
            AuditAction.USER_CREATE,
            target_type="user",
            target_id=user.id,
            details={"email": user.email, "isAdmin": is_admin},
        )
    return user


async def get_user_by_email(conn: Connection, email: str) -> User:
    """The user with this e-mail, or :class:`NotFound`."""
    row = await conn.fetchrow(
        "SELECT id, email, is_admin, created_at, deactivated_at FROM users WHERE email = $1",
        normalise_email(email),
    )
    if row is None:
        raise NotFound("no user with this e-mail", field="email")
    return user_of(row)


async def get_user(conn: Connection, user_id: UUID) -> User:
    """The user with this id, or :class:`NotFound`."""
    row = await conn.fetchrow(
        "SELECT id, email, is_admin, created_at, deactivated_at FROM users WHERE id = $1", user_id
    )
    if row is None:
        raise NotFound("no such user")
    return user_of(row)


async def memberships(conn: Connection, user_id: UUID) -> list[Membership]:
    """The workspaces ``user_id`` belongs to, by name."""
    rows = await conn.fetch(
        """
        SELECT m.workspace_id, w.name, m.role::text AS role
        FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id
        WHERE m.user_id = $1
        ORDER BY lower(w.name)
        """,
        user_id,
    )
    return [Membership(r["workspace_id"], r["name"], Role(r["role"])) for r in rows]


#: Why an app person whose e-mail an unlinked keygate user has is refused.
LINK_REQUIRED = (
    "a keygate account with this e-mail exists but is not linked to your account of the app; "
    "an operator can link it with `keygate users link`"
)


async def resolve_external(
    conn: Connection,
    actor: Actor,
    *,
    external_id: str,
    email: str | None,
    email_verified: bool = False,
    link_by_email: bool = False,
) -> User:
    """The keygate user behind the protected app's user ``external_id``, made on first sight.

    Used when people sign in to the app and not to keygate (upstream sessions). A known id is
    that user. Otherwise a new person is created with the e-mail the session check vouched
    for, unless a keygate user already has it: that user is linked to the app's id only with
    ``link_by_email`` (``KEYGATE_LINK_USERS_BY_EMAIL``), an ``email_verified`` claim, and if they
    are neither an admin nor hold a local password. Everyone else is refused (409 on
    ``email``) until an operator links them (:func:`link_external`): an app that lets people
    pick any e-mail must not hand them an existing keygate account.
    """
    known = await _by_external_id(conn, external_id)
    if known is not None:
        return known
    if not email:
        raise InvalidInput(
            "the app's session check returned no e-mail, so keygate cannot know this person",
            field="email",
        )
    email = normalise_email(email)
    try:
        return await _link_or_create(
            conn, actor, external_id, email, link_by_email and email_verified
        )
    except asyncpg.UniqueViolationError:
        # Another request made this person first, or the e-mail was taken meanwhile.
        known = await _by_external_id(conn, external_id)
        if known is not None:
            return known
        raise Conflict("this e-mail belongs to another account of the app", field="email") from None


async def link_external(conn: Connection, actor: Actor, *, email: str, external_id: str) -> User:
    """Link the keygate user with ``email`` to the app's user ``external_id`` (an operator's
    deliberate act, for admins and people with a password too); audited as
    ``user.link_external``."""
    external_id = external_id.strip()
    if not external_id or len(external_id) > 255:
        raise InvalidInput("must be 1 to 255 characters", field="externalId")
    user = await get_user_by_email(conn, email)
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                "UPDATE users SET external_id = $1 WHERE id = $2 "
                "AND (external_id IS NULL OR external_id = $1) "
                "RETURNING id, email, is_admin, created_at, deactivated_at",
                external_id,
                user.id,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "this app id is already linked to another person", field="externalId"
            ) from None
        if row is None:
            raise Conflict("this person is already linked to another app id", field="email")
        await _audit_link(conn, actor, user_of(row), external_id, "operator")
    return user


async def _by_external_id(conn: Connection, external_id: str) -> User | None:
    row = await conn.fetchrow(
        "SELECT id, email, is_admin, created_at, deactivated_at FROM users WHERE external_id = $1",
        external_id,
    )
    return None if row is None else user_of(row)


async def _link_or_create(
    conn: Connection, actor: Actor, external_id: str, email: str, may_link: bool
) -> User:
    async with conn.transaction():
        existing = await conn.fetchrow(
            "SELECT id, external_id, is_admin, password_hash IS NOT NULL AS has_password "
            "FROM users WHERE email = $1 FOR UPDATE",
            email,
        )
        if existing is None:
            row = await conn.fetchrow(
                "INSERT INTO users (email, external_id) VALUES ($1, $2) "
                "RETURNING id, email, is_admin, created_at, deactivated_at",
                email,
                external_id,
            )
            assert row is not None
            user = user_of(row)
            await record_event(
                conn,
                actor,
                AuditAction.USER_CREATE_EXTERNAL,
                target_type="user",
                target_id=user.id,
                details={"email": user.email, "externalId": external_id},
            )
            return user
        if existing["external_id"] is not None:
            raise Conflict("this e-mail belongs to another account of the app", field="email")
        if not may_link or existing["is_admin"] or existing["has_password"]:
            raise Conflict(LINK_REQUIRED, field="email")
        row = await conn.fetchrow(
            "UPDATE users SET external_id = $1 WHERE id = $2 "
            "RETURNING id, email, is_admin, created_at, deactivated_at",
            external_id,
            existing["id"],
        )
        assert row is not None
        user = user_of(row)
        await _audit_link(conn, actor, user, external_id, "verified_email")
    return user


async def _audit_link(
    conn: Connection, actor: Actor, user: User, external_id: str, how: str
) -> None:
    await record_event(
        conn,
        actor,
        AuditAction.USER_LINK_EXTERNAL,
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "externalId": external_id, "linkedBy": how},
    )
