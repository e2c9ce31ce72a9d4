"""The outcome of introspecting a token, and its RFC 7662 wire shape.

Pure and shared: the introspector produces it, the gateway parses it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Exact reason ids kept for metrics, logs and the audit trail; clients only ever see inactive.
INACTIVE_REASONS = ("invalid", "revoked", "expired", "malformed")


@dataclass(frozen=True, slots=True)
class IntrospectionResult:
    """An active token's claims, or an inactive answer with the exact (internal) reason.

    Slotted: a gateway holds one per cached token (100,000 by default), and a ``__dict__`` per
    instance would be most of their memory.
    """

    active: bool
    reason: str | None = None  # set when inactive; never serialised
    token_id: str | None = None
    public_id: str | None = None
    user_id: str | None = None
    email: str | None = None
    scope: str | None = None
    workspace_id: str | None = None
    rate_limit: int | None = None
    issued_at: int | None = None
    expires_at: int | None = None
    #: The protected app's id of the owner, when the owner is linked to an app account.
    #: Last, so cache entries written before it existed still load (it defaults to None).
    external_id: str | None = None

    @classmethod
    def inactive(cls, reason: str) -> IntrospectionResult:
        """An inactive answer; ``reason`` is one of :data:`INACTIVE_REASONS`."""
        return cls(active=False, reason=reason)

    def to_rfc7662(self) -> dict[str, Any]:
        """The RFC 7662 response body: exactly ``{"active": false}`` when inactive."""
        if not self.active:
            return {"active": False}
        body: dict[str, Any] = {
            "active": True,
            "sub": self.user_id,
            "username": self.email,
            "scope": self.scope,
            "token_type": "Bearer",
            "iat": self.issued_at,
            "token_id": self.token_id,
            "public_id": self.public_id,
            "workspace_id": self.workspace_id,
            "rate_limit": self.rate_limit,
            "external_id": self.external_id,
        }
        if self.expires_at is not None:
            body["exp"] = self.expires_at
        return body

    @classmethod
    def from_rfc7662(cls, body: dict[str, Any]) -> IntrospectionResult:
        """Parse what :meth:`to_rfc7662` produced (used by the gateway)."""
        if body.get("active") is not True:
            return cls.inactive("invalid")
        return cls(
            active=True,
            token_id=body.get("token_id"),
            public_id=body.get("public_id"),
            user_id=body.get("sub"),
            email=body.get("username"),
            scope=body.get("scope"),
            workspace_id=body.get("workspace_id"),
            rate_limit=body.get("rate_limit"),
            issued_at=body.get("iat"),
            expires_at=body.get("exp"),
            external_id=body.get("external_id"),
        )
