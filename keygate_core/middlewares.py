"""Middlewares every keygate service behind the gateway shares.

* :func:`request_context`: the request id (the caller's when well-formed, else a new one) in
  :data:`keygate_core.logs.request_id_var`, one log line per request and a duration hook.
* :func:`internal_secret_guard`: only a caller holding the internal secret (the gateway) gets
  past it, except on the paths the service declares open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from keygate_core import headers
from keygate_core.internal_secret import InternalSecrets, presented_matches
from keygate_core.logs import request_id_var

#: Called once per request with the route's canonical path, the status and the seconds taken.
Observer = Callable[[web.Request, str, int, float], None]


def request_context(
    log: logging.Logger, *, observe: Observer | None = None, echo_request_id: bool = False
) -> Middleware:
    """The outermost middleware: request id, one log line, ``observe`` (e.g. a histogram).

    With ``echo_request_id`` the response carries the id in ``X-Request-Id``.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = headers.request_id_or_new(request.headers.get(headers.REQUEST_ID))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if echo_request_id:
                response.headers[headers.REQUEST_ID] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            elapsed = time.perf_counter() - started
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            if observe is not None:
                observe(request, route, status, elapsed)
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)

    return middleware


def internal_secret_guard(
    secrets: InternalSecrets,
    *,
    is_open: Callable[[str], bool],
    refuse: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Middleware:
    """Refuse every request to a path not ``is_open`` that lacks an accepted internal secret
    (the current one, or the previous one during a rotation) in ``X-Keygate-Internal-Secret``,
    compared in constant time; ``refuse`` answers it."""
    accepted = secrets.accepted()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_open(request.path):
            presented = request.headers.get(headers.INTERNAL_SECRET, "")
            if not presented_matches(presented, accepted):
                return await refuse(request)
        return await handler(request)

    return middleware
