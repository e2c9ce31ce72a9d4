"""``/api/platform/internal/users``: the user lifecycle for organisation admins.

List people, look one up, create one, set a password, deactivate and reactivate (see
:mod:`introspector.user_lifecycle`). Only a caller that acts as an organisation admin (signed
in, or with an ORGANIZATION token) may; everyone else gets 403. Once a deactivation or a
password change has committed, its outboxes are delivered before the answer, so a 200 means the
tokens are refused and the sessions are gone (unless Redis is down: then the background loop
delivers them when it is back).
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from introspector import user_lifecycle, users
from introspector.appkeys import ANNOUNCER, HASHER, POOL
from introspector.caller import Caller, load_caller
from introspector.db import Connection
from introspector.errors import Forbidden, InvalidInput, NotFound
from introspector.user_lifecycle import UserStatus
from introspector.views.request_body import json_object, optional_str, query_int

NO_STORE = {"Cache-Control": "no-store"}


async def _admin(request: web.Request, conn: Connection) -> Caller:
    caller = await load_caller(request, conn)
    if not caller.acts_as_org_admin:
        raise Forbidden("only an organisation admin can manage people")
    return caller


def _user_id(request: web.Request) -> UUID:
    """The ``{user_id}`` of the path; something that is not an id cannot exist: 404."""
    try:
        return UUID(request.match_info["user_id"])
    except ValueError:
        raise NotFound("no such user") from None


def _status(request: web.Request) -> UserStatus | None:
    raw = request.query.get("status")
    if raw is None:
        return None
    try:
        return UserStatus(raw)
    except ValueError:
        raise InvalidInput("must be active or deactivated", field="status") from None


async def list_users(request: web.Request) -> web.Response:
    """GET: people ordered by e-mail, paged like the token list."""
    limit = query_int(request, "limit", 50, 1, 200)
    offset = query_int(request, "offset", 0, 0, 10_000_000)
    status = _status(request)
    query = request.query.get("q") or None
    async with request.app[POOL].acquire() as conn:
        await _admin(request, conn)
        found = await user_lifecycle.list_users(
            conn, limit=limit + 1, offset=offset, email_contains=query, status=status
        )
    items = [u.to_json() for u in found[:limit]]
    next_offset = offset + limit if len(found) > limit else None
    return web.json_response({"items": items, "nextOffset": next_offset}, headers=NO_STORE)


async def get_user(request: web.Request) -> web.Response:
    """GET: one person, by id."""
    user_id = _user_id(request)
    async with request.app[POOL].acquire() as conn:
        await _admin(request, conn)
        summary = await user_lifecycle.user_summary(conn, user_id)
    return web.json_response(summary.to_json(), headers=NO_STORE)


async def create_user(request: web.Request) -> web.Response:
    """POST {email, password?}: 201 with the new person."""
    body = await json_object(request, frozenset({"email", "password"}))
    email = optional_str(body, "email")
    if not email:
        raise InvalidInput("is required", field="email")
    password = optional_str(body, "password")
    app = request.app
    # The password is hashed on this borrowed connection: creating people is rare and only
    # for admins, unlike token creation, which keeps argon2 off its connections.
    async with app[POOL].acquire() as conn:
        caller = await _admin(request, conn)
        user = await users.create_user(
            conn, app[HASHER], caller.actor, email=email, password=password
        )
        created = await user_lifecycle.user_summary(conn, user.id)
    return web.json_response(created.to_json(), status=201, headers=NO_STORE)


async def set_password(request: web.Request) -> web.Response:
    """PUT {password}: 204; every session of the person has ended."""
    user_id = _user_id(request)
    body = await json_object(request, frozenset({"password"}))
    password = optional_str(body, "password")
    if password is None:
        raise InvalidInput("is required", field="password")
    app = request.app
    async with app[POOL].acquire() as conn:
        caller = await _admin(request, conn)
        await user_lifecycle.set_password(conn, app[HASHER], caller.actor, user_id, password)
    await app[ANNOUNCER].deliver_quietly()
    return web.Response(status=204)


async def deactivate(request: web.Request) -> web.Response:
    """POST: 200 {user, revokedTokens}; tokens refused and sessions ended by the answer."""
    user_id = _user_id(request)
    app = request.app
    async with app[POOL].acquire() as conn:
        caller = await _admin(request, conn)
        summary, revoked = await user_lifecycle.deactivate(conn, caller.actor, user_id)
    await app[ANNOUNCER].deliver_quietly()
    return web.json_response(
        {"user": summary.to_json(), "revokedTokens": revoked}, headers=NO_STORE
    )


async def reactivate(request: web.Request) -> web.Response:
    """POST: 200 {user}; sign-in works again, revoked tokens stay revoked."""
    user_id = _user_id(request)
    async with request.app[POOL].acquire() as conn:
        caller = await _admin(request, conn)
        summary = await user_lifecycle.reactivate(conn, caller.actor, user_id)
    return web.json_response({"user": summary.to_json()}, headers=NO_STORE)
