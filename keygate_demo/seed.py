"""The demo's people, workspace and token, made idempotently through keygate's service layer.

A second run finds the people and the workspace and leaves them be. The token cannot be shown
again (only its hash is stored), so every run issues a fresh one and revokes the one the previous
run printed: whatever the banner shows works, and only that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from introspector import tokens, users, workspaces
from introspector.errors import NotFound
from introspector.hashing import SecretHasher
from introspector.models import Actor, Role, TokenStatus, User
from introspector.settings import IntrospectorSettings
from keygate_core.scopes import Scope

WORKSPACE = "Demo workspace"
TOKEN_NAME = "make demo"


@dataclass(frozen=True)
class Person:
    """A demo login."""

    email: str
    password: str
    admin: bool


ADMIN = Person("admin@demo.keygate.dev", "demo-admin-password", admin=True)
MEMBER = Person("member@demo.keygate.dev", "demo-member-password", admin=False)


@dataclass(frozen=True)
class Seeded:
    """What the banner prints."""

    created_people: bool
    token: str
    token_owner: str
    revoked_previous: int


async def seed(settings: IntrospectorSettings) -> Seeded:
    """Make sure the demo people and workspace exist; issue this run's demo token.

    Passwords and the token are hashed with the ``KEYGATE_ARGON2_*`` settings: the parameters
    the introspector itself hashes with.
    """
    actor = Actor.operator()
    hasher = SecretHasher.from_settings(settings)
    conn = await asyncpg.connect(settings.database_url, timeout=10)
    try:
        created = False
        people: dict[str, User] = {}
        for person in (ADMIN, MEMBER):
            try:
                people[person.email] = await users.get_user_by_email(conn, person.email)
            except NotFound:
                people[person.email] = await users.create_user(
                    conn,
                    hasher,
                    actor,
                    email=person.email,
                    password=person.password,
                    is_admin=person.admin,
                )
                created = True
        try:
            workspace = await workspaces.find_workspace(conn, WORKSPACE)
        except NotFound:
            workspace = await workspaces.create_workspace(conn, actor, name=WORKSPACE)
            await workspaces.add_member(conn, actor, workspace, people[ADMIN.email], Role.ADMIN)
            await workspaces.add_member(conn, actor, workspace, people[MEMBER.email], Role.MEMBER)

        owner = people[MEMBER.email]
        revoked = 0
        for record in await tokens.list_tokens(conn, user_id=owner.id, limit=1000):
            if record.name == TOKEN_NAME and record.status(datetime.now(UTC)) is TokenStatus.ACTIVE:
                _, now_revoked = await tokens.revoke_token(conn, actor, record.id)
                revoked += now_revoked
        issued = await tokens.create_token(
            conn,
            hasher,
            actor,
            owner=owner,
            name=TOKEN_NAME,
            edition=settings.edition,
            scope=Scope.PERSONAL,
        )
        return Seeded(created, issued.plaintext, owner.email, revoked)
    finally:
        await conn.close()
        hasher.close()
