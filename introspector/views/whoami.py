"""``GET /api/platform/internal/whoami``: who the credential belongs to and what it may do."""

from __future__ import annotations

from aiohttp import web

from introspector import users
from introspector.appkeys import POOL, SETTINGS
from introspector.caller import load_caller
from introspector.models import Role
from introspector.settings import Edition
from keygate_core.scopes import Scope


async def whoami(request: web.Request) -> web.Response:
    """Any authenticated caller: user, workspaces, usable scopes, auth method, token id."""
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
    body = {
        "userId": str(caller.user.id),
        "email": caller.user.email,
        "workspaces": [
            {"id": str(m.workspace_id), "name": m.workspace_name, "role": m.role.value}
            for m in memberships
        ],
        "scopes": scopes,
        "authMethod": caller.auth_method,
    }
    if caller.token is not None:
        body["tokenId"] = str(caller.token.id)
    return web.json_response(body, headers={"Cache-Control": "no-store"})
