"""Errors as ``application/problem+json`` (RFC 9457): one error base, one renderer.

Every JSON service raises :class:`Problem` subclasses and renders them with
:func:`render_problem` in exactly one middleware.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An answer a service gives instead of a result: status, fixed reason id, human detail.

    Subclasses set ``status``, ``reason`` and ``title`` as class attributes or pass them in.
    ``field`` names the bad input; ``headers`` go onto the response (``Retry-After`` …).
    The detail is for people and never contains a secret.
    """

    status: int = 500
    reason: str = "internal_error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers: dict[str, str] = dict(headers or {})


def problem_response(
    status: int,
    reason: str,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
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


def render_problem(
    error: Problem, request_id: str | None, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The response for ``error``; ``headers`` are added to the error's own."""
    return problem_response(
        error.status,
        error.reason,
        error.title,
        error.detail,
        field=error.field,
        headers={**error.headers, **(headers or {})},
        request_id=request_id,
    )


def http_exception_problem(exc: web.HTTPException, request_id: str | None) -> web.Response:
    """aiohttp's own 4xx/5xx (unknown route, wrong method, body too large) as problem+json."""
    return problem_response(
        exc.status,
        exc.reason.lower().replace(" ", "_"),
        exc.reason,
        exc.text or exc.reason,
        request_id=request_id,
        headers={k: v for k, v in exc.headers.items() if k == "Allow"},
    )


def internal_error(request_id: str | None) -> web.Response:
    """The 500 for an exception nobody expected; the caller logs it with the request id."""
    return problem_response(
        500,
        "internal_error",
        "Internal error",
        "something went wrong on our side",
        request_id=request_id,
    )
