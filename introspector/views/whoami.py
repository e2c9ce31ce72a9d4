"""``GET /api/platform/internal/whoami``: who the credential belongs to and what it may do."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from introspector import users
from introspector.appkeys import POOL, SETTINGS
from introspector.caller import load_caller
from introspector.models import Role
from introspector.settings import Edition
from keygate_core import headers
from keygate_core.scopes import Scope


async def whoami(request: web.Request) -> web.Response:
    """Any authenticated caller: user, workspaces, usable scopes, auth method; a token caller
    also its token's id, expiry and per-minute rate limit (absent for sessions, which have none
    of these)."""
    async with request.app[POOL].acquire() as conn:
        caller = await load_caller(request, conn)
        memberships = await users.memberships(conn, caller.user.id)
    token = caller.token
    if token is not None and token.scope is Scope.WORKSPACE:
        # A WORKSPACE token acts for its workspace only; the owner's others are not its business.
        memberships = [m for m in memberships if m.workspace_id == token.workspace_id]
    if caller.token is not None:
        scopes = [caller.token.scope.value]
    else:
        scopes = [Scope.PERSONAL.value]
        if request.app[SETTINGS].edition is Edition.ENTERPRISE:
            if any(m.role is Role.ADMIN for m in memberships):
                scopes.append(Scope.WORKSPACE.value)
            if caller.user.is_admin:
                scopes.append(Scope.ORGANIZATION.value)
    body: dict[str, Any] = {
        "userId": str(caller.user.id),
        "email": caller.user.email,
        "workspaces": [
            {"id": str(m.workspace_id), "name": m.workspace_name, "role": m.role.value}
            for m in memberships
        ],
        "scopes": scopes,
        "authMethod": caller.auth_method,
    }
    if token is not None:
        body["tokenId"] = str(token.id)
        body["expiresAt"] = None if token.expires_at is None else token.expires_at.isoformat()
        body["rateLimit"] = _rate_limit(token.rate_limit, request.headers.get(headers.RATE_LIMIT))
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def _rate_limit(own: int | None, told: str | None) -> dict[str, Any]:
    """The token's per-minute limit and where it comes from. Only the gateway knows its
    default (``KEYGATE_RATE_LIMIT_PER_MINUTE``) and tells it in :data:`headers.RATE_LIMIT`;
    ``perMinute`` is ``null`` when a gateway too old to tell it forwarded the call."""
    if own is not None:
        return {"perMinute": own, "source": "token"}
    told = (told or "").strip()
    return {
        "perMinute": int(told) if told.isascii() and told.isdigit() else None,
        "source": "default",
    }
