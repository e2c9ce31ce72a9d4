"""``/api/platform/internal/api-tokens``: create, list and revoke API tokens.

Permission rules (see docs): everyone manages their own PERSONAL tokens; WORKSPACE tokens need
an admin of that workspace, ORGANIZATION tokens an organisation admin, both only in the
enterprise edition. A token caller acts only within its reach (:mod:`introspector.reach`).
A token the caller may not see answers 404, never 403, so existence does not leak.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aiohttp import web

from introspector import reach, tokens, workspaces
from introspector.appkeys import (
    ANNOUNCER,
    CREATION_GATE,
    CREATION_LIMITS,
    HASHER,
    METRICS,
    POOL,
    SETTINGS,
)
from introspector.caller import Caller, client_address, load_caller
from introspector.db import Connection
from introspector.errors import Forbidden, InvalidInput, NotFound
from introspector.models import CreatedToken, Role, TokenRecord
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
    async with app[CREATION_GATE].slot():
        created = await _create(request, name, scope, workspace_id, expires_at, rate_limit)
    app[METRICS].token_create.labels(created.record.scope.value).inc()
    payload = {**created.record.to_json(datetime.now(UTC)), "token": created.plaintext}
    return web.json_response(payload, status=201, headers=NO_STORE)


async def _create(
    request: web.Request,
    name: str,
    scope: Scope,
    workspace_id: UUID | None,
    expires_at: datetime | None,
    rate_limit: int | None,
) -> CreatedToken:
    """Three steps, so no pool connection waits for argon2: check the request on a borrowed
    connection, count it against the creation limits and hash the secret with no connection,
    then store it (re-checking) on a second short borrow."""
    app = request.app
    settings = app[SETTINGS]
    max_live = settings.max_tokens_per_user
    async with app[POOL].acquire() as conn:
        caller = await load_caller(request, conn)
        if rate_limit is not None and not caller.acts_as_org_admin:
            raise Forbidden("only an organisation admin can set a rate limit", field="rateLimit")
        requested = tokens.NewToken(
            caller.user, tokens.clean_token_name(name), scope, workspace_id, expires_at, rate_limit
        )
        new = reach.bound_by_parent(caller, requested)
        await tokens.check_new_token(conn, settings.edition, new, datetime.now(UTC), max_live)
    await app[CREATION_LIMITS].admit(caller.user.id, client_address(request))
    hashed = await tokens.hash_new_token(app[HASHER])
    async with app[POOL].acquire() as conn:
        return await tokens.insert_token(
            conn, caller.actor, new, hashed, settings.edition, datetime.now(UTC), max_live
        )


async def list_tokens(request: web.Request) -> web.Response:
    """GET: the caller's tokens (``?all=true``: everyone's, for organisation admins), paged."""
    everyone = request.query.get("all", "false").lower() == "true"
    limit = query_int(request, "limit", 50, 1, 200)
    offset = query_int(request, "offset", 0, 0, 10_000_000)
    async with request.app[POOL].acquire() as conn:
        caller = await load_caller(request, conn)
        if everyone and not caller.acts_as_org_admin:
            raise Forbidden("only an organisation admin can list everyone's tokens", field="all")
        token = None if everyone else caller.token
        records = await tokens.list_tokens(
            conn,
            user_id=None if everyone else caller.user.id,
            limit=limit + 1,
            offset=offset,
            scopes=reach.listed_scopes(token),
            workspace_id=token.workspace_id if token is not None else None,
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
        if not await may_act_on(conn, caller, record):
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


async def may_act_on(conn: Connection, caller: Caller, record: TokenRecord) -> bool:
    """Whether the caller may revoke ``record``: an organisation admin, the owner within the
    reach of the token they call with, or an admin of the token's workspace (as a session or
    through a WORKSPACE token of that workspace)."""
    if caller.acts_as_org_admin:
        return True
    if record.user_id == caller.user.id:
        return reach.reaches(caller.token, record)
    workspace_id = record.workspace_id
    if workspace_id is None:
        return False
    token = caller.token
    if token is not None and not (
        token.scope is Scope.WORKSPACE and token.workspace_id == workspace_id
    ):
        return False
    return await workspaces.role_in(conn, workspace_id, caller.user.id) is Role.ADMIN
