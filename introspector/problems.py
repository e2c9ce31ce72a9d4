"""Rendering errors as ``application/problem+json`` (RFC 9457) — the one place that does it."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from introspector.errors import KeygateError

PROBLEM_JSON = "application/problem+json"


def problem_response(
    status: int,
    reason: str,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> web.Response:
    """A problem+json response; ``reason`` is keygate's fixed id, ``field`` names bad input."""
    body: dict[str, Any] = {
        "type": f"urn:keygate:problem:{reason}",
        "title": title,
        "status": status,
        "detail": detail,
        "reason": reason,
    }
    if field is not None:
        body["field"] = field
    if request_id is not None:
        body["requestId"] = request_id
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_JSON,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def render_error(error: KeygateError, request_id: str | None) -> web.Response:
    """The response for a domain error."""
    headers = {"Retry-After": "1"} if error.status == 503 else {}
    if error.status == 429:
        headers = {"Retry-After": str(getattr(error, "retry_after", 60))}
    return problem_response(
        error.status,
        error.reason,
        error.title,
        error.detail,
        field=error.field,
        headers=headers,
        request_id=request_id,
    )
