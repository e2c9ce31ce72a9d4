"""What a new token must satisfy before it is stored: its name, scope, workspace binding,
expiry, rate limit, and the owner's cap on live tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from introspector.db import Connection
from introspector.errors import EditionRestricted, Forbidden, InvalidInput, NotFound, TooManyTokens
from introspector.models import Role, User
from introspector.settings import Edition
from introspector.workspaces import role_in
from keygate_core.scopes import Scope

MAX_NAME_LENGTH = 100
MAX_RATE_LIMIT = 1_000_000

_LIVE_COUNT = """
    SELECT count(*) FROM api_token
    WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)
"""


@dataclass(frozen=True)
class NewToken:
    """What a token about to be created will be (everything but its secret)."""

    owner: User
    name: str
    scope: Scope = Scope.PERSONAL
    workspace_id: UUID | None = None
    expires_at: datetime | None = None
    rate_limit: int | None = None
    #: The token that mints this one; the new token dies with it.
    parent_id: UUID | None = None


def clean_token_name(name: str) -> str:
    """A trimmed name of 1–100 printable characters, else :class:`InvalidInput` on ``name``."""
    cleaned = name.strip()
    if not cleaned:
        raise InvalidInput("must not be empty", field="name")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(f"must be at most {MAX_NAME_LENGTH} characters", field="name")
    if not cleaned.isprintable():
        raise InvalidInput("must not contain control characters", field="name")
    return cleaned


def check_scope_allowed(
    edition: Edition, owner: User, scope: Scope, workspace_role: Role | None
) -> None:
    """Refuse a scope the owner may not hold.

    PERSONAL: anyone. WORKSPACE: an admin of that workspace. ORGANIZATION: an organisation admin.
    The last two exist only in the enterprise edition.
    """
    if scope is Scope.PERSONAL:
        return
    if edition is not Edition.ENTERPRISE:
        raise EditionRestricted(
            f"{scope.value} tokens need the enterprise edition; this keygate runs the community "
            "edition, which issues PERSONAL tokens only",
            field="scope",
        )
    if scope is Scope.WORKSPACE and workspace_role is not Role.ADMIN:
        raise Forbidden("only an admin of the workspace can create WORKSPACE tokens", field="scope")
    if scope is Scope.ORGANIZATION and not owner.is_admin:
        raise Forbidden("only an organisation admin can create ORGANIZATION tokens", field="scope")


async def check_new_token(
    conn: Connection, edition: Edition, new: NewToken, now: datetime, max_live: int | None
) -> None:
    """Refuse a token that may not be created: bad expiry or rate limit, a scope that does not
    fit the workspace binding, a workspace the owner is not in, a scope the owner may not hold,
    an owner who already has ``max_live`` live tokens."""
    if new.expires_at is not None:
        if new.expires_at.tzinfo is None:
            raise InvalidInput("must include a time zone", field="expiresAt")
        if new.expires_at <= now:
            raise InvalidInput("must be in the future", field="expiresAt")
    if new.rate_limit is not None and not 1 <= new.rate_limit <= MAX_RATE_LIMIT:
        raise InvalidInput(f"must be between 1 and {MAX_RATE_LIMIT}", field="rateLimit")
    scope, workspace_id = new.scope, new.workspace_id
    if scope is Scope.WORKSPACE and workspace_id is None:
        raise InvalidInput("a WORKSPACE token needs a workspace", field="workspaceId")
    if scope is not Scope.WORKSPACE and workspace_id is not None:
        raise InvalidInput(
            f"a {scope.value} token is not bound to a workspace", field="workspaceId"
        )
    role = await role_in(conn, workspace_id, new.owner.id) if workspace_id is not None else None
    if workspace_id is not None and role is None:
        raise NotFound("no such workspace, or the owner is not a member", field="workspaceId")
    check_scope_allowed(edition, new.owner, scope, role)
    if max_live is not None and await conn.fetchval(_LIVE_COUNT, new.owner.id, now) >= max_live:
        raise TooManyTokens(
            f"the owner already holds {max_live} live tokens, the most allowed; revoke one first"
        )
