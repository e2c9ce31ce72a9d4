"""``/sessions``: local sign-in for the admin UI (internal; the UI calls it for the browser)."""

from __future__ import annotations

from aiohttp import web

from introspector.appkeys import SESSIONS
from introspector.caller import client_address
from introspector.errors import InvalidInput
from introspector.views.request_body import json_object, optional_str


async def create_session(request: web.Request) -> web.Response:
    """POST {email, password, deviceToken?} → 201 {sessionId, userId, email, expiresAt,
    deviceToken, deviceTokenExpiresAt}; 401 / 429 otherwise."""
    body = await json_object(request, frozenset({"email", "password", "deviceToken"}))
    email = optional_str(body, "email")
    password = optional_str(body, "password")
    # A device token that is not genuine (stale, edited, another account's) counts as none.
    device_token = optional_str(body, "deviceToken")
    if not email:
        raise InvalidInput("is required", field="email")
    if not password:
        raise InvalidInput("is required", field="password")
    # No pool connection is held here: the store takes one only for its query, never while
    # the password waits for an argon2 slot.
    session = await request.app[SESSIONS].login(
        email, password, client_address(request), device_token
    )
    return web.json_response(
        {
            "sessionId": session.session_id,
            "userId": session.user_id,
            "email": session.email,
            "expiresAt": session.expires_at.isoformat(),
            "deviceToken": session.device_token,
            "deviceTokenExpiresAt": session.device_expires_at.isoformat(),
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def revoke_session(request: web.Request) -> web.Response:
    """POST {sessionId} → 204, whether or not the session still existed."""
    body = await json_object(request, frozenset({"sessionId"}))
    session_id = optional_str(body, "sessionId")
    if not session_id:
        raise InvalidInput("is required", field="sessionId")
    await request.app[SESSIONS].revoke(session_id)
    return web.Response(status=204)
