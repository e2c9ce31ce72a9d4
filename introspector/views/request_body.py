"""Reading request bodies strictly: the shape is checked before any work is done."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from introspector.errors import InvalidInput

MAX_JSON_BYTES = 16 * 1024


async def json_object(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` keys (anything else is refused by name).

    Refusing unknown keys is what stops mass assignment: a client cannot slip in ``userId`` or
    ``revokedAt`` and have it silently ignored or, worse, honoured.
    """
    if request.content_type != "application/json":
        raise InvalidInput("send a JSON body with Content-Type: application/json", field="body")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise InvalidInput(f"must be at most {MAX_JSON_BYTES} bytes", field="body")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("is not valid JSON", field="body") from None
    if not isinstance(body, dict):
        raise InvalidInput("must be a JSON object", field="body")
    for key in body:
        if key not in allowed:
            raise InvalidInput(
                f"unknown field; allowed fields are {', '.join(sorted(allowed))}", field=key
            )
    return body


def optional_str(body: dict[str, Any], key: str) -> str | None:
    """``body[key]`` when it is a string, ``None`` when absent or null, else InvalidInput."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=key)
    return value


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within bounds."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput("must be a whole number", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"must be between {low} and {high}", field=name)
    return value
