"""What a token may do to other tokens through the management API: its reach.

A person signed in (a session) acts with all their own powers. A token acts with less: it may
mint, list, revoke and read the usage of only the tokens it could have minted itself.

- an ORGANIZATION token: every scope (and, for an organisation admin, everyone's tokens);
- a WORKSPACE token: WORKSPACE tokens of its own workspace, nothing unbound;
- a PERSONAL token: PERSONAL tokens.

A minted token is never broader, longer-lived or faster than its parent, records the parent, and
is revoked with it (:mod:`introspector.revoking`).
"""

from __future__ import annotations

import dataclasses

from introspector.caller import Caller
from introspector.errors import Forbidden
from introspector.models import TokenRecord
from introspector.tokens import NewToken
from keygate_core.scopes import Scope


def reaches(token: TokenRecord | None, target: TokenRecord) -> bool:
    """Whether a caller acting through ``token`` (``None``: a session) may act on ``target``,
    one of the owner's own tokens."""
    if token is None:
        return True
    if token.scope is Scope.WORKSPACE:
        return target.scope is Scope.WORKSPACE and target.workspace_id == token.workspace_id
    return token.scope.covers(target.scope)


def listed_scopes(token: TokenRecord | None) -> list[Scope] | None:
    """The scopes a token caller's listing shows (``None``: all of them)."""
    if token is None or token.scope is Scope.ORGANIZATION:
        return None
    return [token.scope]


def bound_by_parent(caller: Caller, new: NewToken) -> NewToken:
    """``new`` as the caller's token may mint it, or :class:`Forbidden` naming the field.

    A child inherits the parent's expiry and rate limit when it asks for none and may not ask
    for more; it records the parent. A session caller's request is returned unchanged.
    """
    parent = caller.token
    if parent is None:
        return new
    _check_scope(parent, new)
    expires_at = new.expires_at
    if parent.expires_at is not None:
        if expires_at is None:
            expires_at = parent.expires_at
        elif expires_at > parent.expires_at:
            raise Forbidden("cannot outlive the token that creates it", field="expiresAt")
    rate_limit = new.rate_limit
    if parent.rate_limit is not None:
        if rate_limit is None:
            rate_limit = parent.rate_limit
        elif rate_limit > parent.rate_limit:
            raise Forbidden(
                f"cannot exceed the rate limit of the token that creates it "
                f"({parent.rate_limit} per minute)",
                field="rateLimit",
            )
    return dataclasses.replace(
        new, expires_at=expires_at, rate_limit=rate_limit, parent_id=parent.id
    )


def _check_scope(parent: TokenRecord, new: NewToken) -> None:
    if not parent.scope.covers(new.scope):
        raise Forbidden(
            f"a {parent.scope.value} token cannot create a {new.scope.value} token", field="scope"
        )
    if parent.scope is not Scope.WORKSPACE:
        return
    if new.scope is not Scope.WORKSPACE:
        raise Forbidden(
            "a WORKSPACE token can only create WORKSPACE tokens of its own workspace; "
            f"a {new.scope.value} token would not be bound to it",
            field="scope",
        )
    if new.workspace_id != parent.workspace_id:
        raise Forbidden(
            "a WORKSPACE token can only create tokens for its own workspace", field="workspaceId"
        )
