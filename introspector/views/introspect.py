"""``POST /introspect`` (RFC 7662): is this token active, and whose is it?"""

from __future__ import annotations

from aiohttp import web

from introspector.appkeys import INTROSPECTOR
from introspector.caller import client_address
from introspector.errors import InvalidInput

MAX_FORM_BYTES = 4096


async def introspect(request: web.Request) -> web.Response:
    """Form body ``token=...``; inactive for any reason is exactly ``{"active": false}``."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise InvalidInput(
            "send an application/x-www-form-urlencoded body (RFC 7662)", field="body"
        )
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise InvalidInput(f"must be at most {MAX_FORM_BYTES} bytes", field="body")
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not token:
        raise InvalidInput("is required", field="token")
    result = await request.app[INTROSPECTOR].introspect(token, client_address(request))
    return web.json_response(result.to_rfc7662(), headers={"Cache-Control": "no-store"})
