"""Typed records the service layer returns; plain data, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from keygate_core.scopes import Scope
from keygate_core.token_format import PREFIX


class Role(enum.Enum):
    """A person's role in a workspace."""

    MEMBER = "member"
    ADMIN = "admin"


class ActorKind(enum.Enum):
    """How the actor of a change was authenticated (recorded in the audit log)."""

    OPERATOR = "operator"  # the `keygate` CLI, run by someone with database access
    SESSION = "session"
    TOKEN = "token"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who performs a change, and from where; every audit event names one."""

    kind: ActorKind
    user_id: UUID | None = None
    token_id: UUID | None = None
    source_ip: str | None = None
    request_id: str | None = None

    @classmethod
    def operator(cls) -> Actor:
        """The CLI operator."""
        return cls(kind=ActorKind.OPERATOR)


@dataclass(frozen=True)
class User:
    """A person who can own tokens."""

    id: UUID
    email: str
    is_admin: bool
    created_at: datetime
    #: When an organisation admin or the operator deactivated them; ``None`` while active.
    deactivated_at: datetime | None = None


@dataclass(frozen=True)
class Workspace:
    """A group of people whose WORKSPACE tokens act on its behalf."""

    id: UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Membership:
    """A user's role in one workspace."""

    workspace_id: UUID
    workspace_name: str
    role: Role


class TokenStatus(enum.Enum):
    """Whether a token can still authenticate."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class TokenRecord:
    """A token's metadata: everything but the secret and its hash."""

    id: UUID
    public_id: str
    user_id: UUID
    user_email: str
    workspace_id: UUID | None
    name: str
    scope: Scope
    rate_limit: int | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    #: The token that minted this one (it dies with it); ``None`` when a person or the
    #: operator made it.
    parent_id: UUID | None = None

    @property
    def display_start(self) -> str:
        """The shareable start of the token, ``kg_<public_id>``."""
        return PREFIX + self.public_id

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The API's camelCase view of this token: metadata only, never the secret or hash."""
        return {
            "id": str(self.id),
            "name": self.name,
            "start": self.display_start,
            "scope": self.scope.value,
            "userId": str(self.user_id),
            "userEmail": self.user_email,
            "workspaceId": None if self.workspace_id is None else str(self.workspace_id),
            "rateLimit": self.rate_limit,
            "createdAt": _iso(self.created_at),
            "lastUsedAt": _iso(self.last_used_at),
            "expiresAt": _iso(self.expires_at),
            "revokedAt": _iso(self.revoked_at),
            "status": self.status(now).value,
            "parentId": None if self.parent_id is None else str(self.parent_id),
        }

    def status(self, now: datetime) -> TokenStatus:
        """The token's status at ``now``; revocation wins over expiry."""
        if self.revoked_at is not None:
            return TokenStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, repr=False)
class CreatedToken:
    """The result of creating a token: its metadata plus the plaintext, this one time."""

    record: TokenRecord
    plaintext: str

    def __repr__(self) -> str:
        return f"CreatedToken(record={self.record!r}, plaintext=<hidden>)"
