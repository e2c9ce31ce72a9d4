"""``/api/platform/internal/api-tokens``: create, list and revoke API tokens.

Permission rules (see docs): everyone manages their own PERSONAL tokens; WORKSPACE tokens need
an admin of that workspace, ORGANIZATION tokens an organisation admin, both only in the
enterprise edition. A token caller can never mint a token broader in scope or longer-lived than
itself. A token the caller may not see answers 404, never 403, so existence does not leak.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aiohttp import web

from introspector import tokens, workspaces
from introspector.appkeys import ANNOUNCER, HASHER, METRICS, POOL, SETTINGS
from introspector.caller import Caller, load_caller
from introspector.db import Connection
from introspector.errors import Forbidden, InvalidInput, NotFound
from introspector.models import Role
from introspector.views.request_body import json_object, optional_str, query_int
from keygate_core.scopes import Scope

CREATE_FIELDS = frozenset({"name", "scope", "workspaceId", "expiresAt", "rateLimit"})
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _parse_scope(value: Any) -> Scope:
    if value is None:
        return Scope.PERSONAL
    try:
        return Scope(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Scope)
        raise InvalidInput(f"must be one of {allowed}", field="scope") from None


def _parse_uuid(value: str | None, field: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput("must be an id (UUID)", field=field) from None


def _parse_time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("must be an RFC 3339 date-time", field=field) from None
    if parsed.tzinfo is None:
        raise InvalidInput("must include a time zone offset (e.g. Z)", field=field)
    return parsed


def _limit_to_caller_token(
    caller: Caller, scope: Scope, workspace_id: UUID | None, expires_at: datetime | None
) -> datetime | None:
    """Refuse what a token caller may not mint; inherit its expiry when none is asked for."""
    token = caller.token
    if token is None:
        return expires_at
    if not token.scope.covers(scope):
        raise Forbidden(
            f"a {token.scope.value} token cannot create a {scope.value} token", field="scope"
        )
    if (
        token.scope is Scope.WORKSPACE
        and scope is Scope.WORKSPACE
        and workspace_id != token.workspace_id
    ):
        raise Forbidden(
            "a WORKSPACE token can only create tokens for its own workspace", field="workspaceId"
        )
    if token.expires_at is not None:
        if expires_at is None:
            return token.expires_at
        if expires_at > token.expires_at:
            raise Forbidden("cannot outlive the token that creates it", field="expiresAt")
    return expires_at


async def create_token(request: web.Request) -> web.Response:
    """POST: create a token; the response carries the plaintext, this one time."""
    body = await json_object(request, CREATE_FIELDS)
    name = optional_str(body, "name")
    if name is None:
        raise InvalidInput("is required", field="name")
    scope = _parse_scope(body.get("scope"))
    workspace_id = _parse_uuid(optional_str(body, "workspaceId"), "workspaceId")
    expires_at = _parse_time(optional_str(body, "expiresAt"), "expiresAt")
    rate_limit = body.get("rateLimit")
    if rate_limit is not None and (not isinstance(rate_limit, int) or isinstance(rate_limit, bool)):
        raise InvalidInput("must be a whole number", field="rateLimit")

    app = request.app
    async with app[POOL].acquire() as conn:
        caller = await load_caller(request, conn)
        if rate_limit is not None and not caller.acts_as_org_admin:
            raise Forbidden("only an organisation admin can set a rate limit", field="rateLimit")
        expires_at = _limit_to_caller_token(caller, scope, workspace_id, expires_at)
        created = await tokens.create_token(
            conn,
            app[HASHER],
            caller.actor,
            owner=caller.user,
            name=name,
            edition=app[SETTINGS].edition,
            scope=scope,
            workspace_id=workspace_id,
            expires_at=expires_at,
            rate_limit=rate_limit,
        )
    app[METRICS].token_create.labels(created.record.scope.value).inc()
    payload = {**created.record.to_json(datetime.now(UTC)), "token": created.plaintext}
    return web.json_response(payload, status=201, headers=NO_STORE)


async def list_tokens(request: web.Request) -> web.Response:
    """GET: the caller's tokens (``?all=true``: everyone's, for organisation admins), paged."""
    everyone = request.query.get("all", "false").lower() == "true"
    limit = query_int(request, "limit", 50, 1, 200)
    offset = query_int(request, "offset", 0, 0, 10_000_000)
    async with request.app[POOL].acquire() as conn:
        caller = await load_caller(request, conn)
        if everyone and not caller.acts_as_org_admin:
            raise Forbidden("only an organisation admin can list everyone's tokens", field="all")
        records = await tokens.list_tokens(
            conn, user_id=None if everyone else caller.user.id, limit=limit + 1, offset=offset
        )
    now = datetime.now(UTC)
    items = [r.to_json(now) for r in records[:limit]]
    next_offset = offset + limit if len(records) > limit else None
    return web.json_response(
        {"items": items, "nextOffset": next_offset}, headers={"Cache-Control": "no-store"}
    )


async def revoke_token(request: web.Request) -> web.Response:
    """DELETE: revoke. 204 whether this call revoked it or it already was (idempotent)."""
    token_id = token_id_of(request)
    app = request.app
    async with app[POOL].acquire() as conn:
        caller = await load_caller(request, conn)
        record = await tokens.get_token(conn, token_id)
        if not await _may_revoke(conn, caller, record.user_id, record.workspace_id):
            raise NotFound("no such token")
        record, revoked_now = await tokens.revoke_token(conn, caller.actor, token_id)
    if revoked_now:
        app[METRICS].token_revoke.labels(record.scope.value).inc()
        await app[ANNOUNCER].deliver_quietly()
    return web.Response(status=204)


def token_id_of(request: web.Request) -> UUID:
    """The ``{token_id}`` of the path; something that is not an id cannot exist: 404."""
    try:
        return UUID(request.match_info["token_id"])
    except ValueError:
        raise NotFound("no such token") from None


async def _may_revoke(
    conn: Connection, caller: Caller, owner_id: UUID, workspace_id: UUID | None
) -> bool:
    if owner_id == caller.user.id or caller.acts_as_org_admin:
        return True
    if workspace_id is None:
        return False
    token = caller.token
    if token is not None and not (
        token.scope is Scope.WORKSPACE and token.workspace_id == workspace_id
    ):
        return False
    return await workspaces.role_in(conn, workspace_id, caller.user.id) is Role.ADMIN
