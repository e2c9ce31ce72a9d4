"""Typed views of the introspector's JSON answers (see docs/introspector-api.md).

Parsing is strict about what the pages rely on and lenient about anything extra, so a newer
introspector can add fields without breaking an older UI. A malformed answer raises
:class:`MalformedAnswer`; the client turns it into an :class:`~admin_ui.api_client.ApiError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class MalformedAnswer(ValueError):
    """The introspector answered with JSON the UI cannot read."""


def required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise MalformedAnswer(f"{key} is not a string")
    return value


def optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedAnswer(f"{key} is not a string")
    return value


def optional_time(data: dict[str, Any], key: str) -> datetime | None:
    text = optional_str(data, key)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise MalformedAnswer(f"{key} is not a timestamp") from None


def required_time(data: dict[str, Any], key: str) -> datetime:
    value = optional_time(data, key)
    if value is None:
        raise MalformedAnswer(f"{key} is missing")
    return value


def optional_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedAnswer(f"{key} is not an integer")
    return value


def object_of(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MalformedAnswer("expected a JSON object")
    return data


def list_of(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise MalformedAnswer(f"{key} is not a list")
    return value


@dataclass(frozen=True)
class Workspace:
    """A workspace the user belongs to, with their role in it."""

    id: str
    name: str
    role: str


@dataclass(frozen=True)
class WhoAmI:
    """The signed-in user and the token scopes they may create."""

    user_id: str
    email: str
    workspaces: tuple[Workspace, ...]
    scopes: tuple[str, ...]

    @property
    def admin_workspaces(self) -> tuple[Workspace, ...]:
        """Workspaces where the user may create WORKSPACE tokens."""
        return tuple(w for w in self.workspaces if w.role == "admin")

    @classmethod
    def parse(cls, data: Any) -> WhoAmI:
        body = object_of(data)
        workspaces = tuple(
            Workspace(
                id=required_str(w, "id"), name=required_str(w, "name"), role=required_str(w, "role")
            )
            for w in map(object_of, list_of(body, "workspaces"))
        )
        scopes = tuple(s for s in list_of(body, "scopes") if isinstance(s, str))
        return cls(required_str(body, "userId"), required_str(body, "email"), workspaces, scopes)


@dataclass(frozen=True)
class Token:
    """A token's metadata; never its secret."""

    id: str
    name: str
    start: str
    scope: str
    user_id: str
    user_email: str
    workspace_id: str | None
    rate_limit: int | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    status: str

    @classmethod
    def parse(cls, data: Any) -> Token:
        body = object_of(data)
        return cls(
            id=required_str(body, "id"),
            name=required_str(body, "name"),
            start=required_str(body, "start"),
            scope=required_str(body, "scope"),
            user_id=required_str(body, "userId"),
            user_email=optional_str(body, "userEmail") or "",
            workspace_id=optional_str(body, "workspaceId"),
            rate_limit=optional_int(body, "rateLimit"),
            created_at=required_time(body, "createdAt"),
            last_used_at=optional_time(body, "lastUsedAt"),
            expires_at=optional_time(body, "expiresAt"),
            revoked_at=optional_time(body, "revokedAt"),
            status=required_str(body, "status"),
        )


@dataclass(frozen=True)
class TokenPage:
    """One page of a token listing."""

    items: tuple[Token, ...]
    next_offset: int | None

    @classmethod
    def parse(cls, data: Any) -> TokenPage:
        body = object_of(data)
        items = tuple(Token.parse(item) for item in list_of(body, "items"))
        return cls(items, optional_int(body, "nextOffset"))


@dataclass(frozen=True)
class CreatedToken:
    """A new token and its plaintext, which exists only for the reveal page."""

    token: Token
    plaintext: str = field(repr=False)

    @classmethod
    def parse(cls, data: Any) -> CreatedToken:
        body = object_of(data)
        return cls(Token.parse(body), required_str(body, "token"))


@dataclass(frozen=True)
class AuditEvent:
    """One append-only audit log entry."""

    id: int
    occurred_at: datetime
    actor_kind: str
    actor_user_id: str | None
    actor_token_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    source_ip: str | None
    request_id: str | None
    details: dict[str, Any]

    @classmethod
    def parse(cls, data: Any) -> AuditEvent:
        body = object_of(data)
        details = body.get("details")
        return cls(
            id=optional_int(body, "id") or 0,
            occurred_at=required_time(body, "occurredAt"),
            actor_kind=optional_str(body, "actorKind") or "unknown",
            actor_user_id=optional_str(body, "actorUserId"),
            actor_token_id=optional_str(body, "actorTokenId"),
            action=required_str(body, "action"),
            target_type=optional_str(body, "targetType"),
            target_id=optional_str(body, "targetId"),
            source_ip=optional_str(body, "sourceIp"),
            request_id=optional_str(body, "requestId"),
            details=details if isinstance(details, dict) else {},
        )


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log, newest first."""

    items: tuple[AuditEvent, ...]
    next_before: int | None

    @classmethod
    def parse(cls, data: Any) -> AuditPage:
        body = object_of(data)
        items = tuple(AuditEvent.parse(item) for item in list_of(body, "items"))
        return cls(items, optional_int(body, "nextBefore"))


@dataclass(frozen=True)
class LoginSession:
    """A session the introspector just opened; ``session_id`` goes into the cookie only."""

    session_id: str = field(repr=False)
    user_id: str
    email: str
    expires_at: datetime | None
    #: For the ``kg_device`` cookie: this browser signed in to the account before.
    device_token: str | None = field(default=None, repr=False)
    device_expires_at: datetime | None = None

    @classmethod
    def parse(cls, data: Any) -> LoginSession:
        body = object_of(data)
        return cls(
            required_str(body, "sessionId"),
            required_str(body, "userId"),
            required_str(body, "email"),
            optional_time(body, "expiresAt"),
            optional_str(body, "deviceToken"),
            optional_time(body, "deviceTokenExpiresAt"),
        )


def parse_usage(data: Any) -> list[tuple[int, int]]:
    """``minutes`` of a usage answer as ``(epoch minute, count)`` pairs."""
    pairs: list[tuple[int, int]] = []
    for entry in list_of(object_of(data), "minutes"):
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in entry)
        ):
            raise MalformedAnswer("minutes holds something other than [minute, count] pairs")
        pairs.append((entry[0], entry[1]))
    return pairs
