"""The admin UI's middlewares, outermost first: headers, request log, internal secret, errors.

* :func:`security_headers` puts the contract's headers on every response, redirects and error
  pages included (static assets are allowed a short cache, pages never).
* the request log (:func:`keygate_core.middlewares.request_context`) and the internal-secret
  guard (:func:`keygate_core.middlewares.internal_secret_guard`, answering with
  :func:`refuse_without_secret`) are shared with the introspector.
* :func:`render_errors` is the one place errors become (friendly, HTML) responses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from admin_ui import csrf
from admin_ui.api_client import ApiError
from admin_ui.cookies import HSTS, cookies
from admin_ui.errors import PageError
from admin_ui.identity import MINTED_CSRF_BASIS, has_app_session, login_redirect, viewer
from admin_ui.pages import render

log = logging.getLogger("keygate.admin_ui")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATIC_PREFIX = "/_keygate/static/"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

_STATUS_MESSAGES = {
    404: ("Page not found", "There is no page at this address."),
    405: ("Not available", "This page cannot be used that way."),
    413: ("Too large", "What you sent is too large."),
}


def _apply(headers: CIMultiDict[str], path: str, status: int, https: bool) -> None:
    headers.update(SECURITY_HEADERS)
    if https:
        headers["Strict-Transport-Security"] = HSTS
    if path.startswith(STATIC_PREFIX) and status < 400:
        # Asset URLs carry a content hash (?v=…), so a short public cache is safe.
        headers["Cache-Control"] = "public, max-age=3600"
    else:
        headers["Cache-Control"] = "no-store"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The contract's security headers on every response."""
    https = cookies(request).https
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _apply(exc.headers, request.path, exc.status, https)
        raise
    _apply(response.headers, request.path, response.status, https)
    return response


@web.middleware
async def app_session_cookie(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give people with an app session the ``kg_ui_csrf`` cookie their form tokens rest on."""
    jar = cookies(request)
    if not has_app_session(request) or request.cookies.get(jar.app_session_csrf):
        return await handler(request)
    request[MINTED_CSRF_BASIS] = minted = csrf.new_login_token()
    cookie = jar.attributes("Strict")
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.set_cookie(jar.app_session_csrf, minted, **cookie)
        raise
    if isinstance(response, web.Response):
        response.set_cookie(jar.app_session_csrf, minted, **cookie)
    return response


async def refuse_without_secret(request: web.Request) -> web.StreamResponse:
    """The page for a request that did not come through the gateway."""
    log.warning(
        "request without an accepted internal secret refused: it did not come through the "
        "gateway, or the gateway's KEYGATE_INTERNAL_SECRET differs from the admin UI's",
        extra={"path": request.path},
    )
    return render(
        request,
        "error.html",
        {"title": "Not reachable directly", "message": "Open keygate through its gateway."},
        viewer=None,
        status=401,
    )


def is_static(path: str) -> bool:
    """Static assets are public: they reveal nothing and need no secret."""
    return path.startswith(STATIC_PREFIX)


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Page errors, API errors and HTTP errors as friendly HTML pages; never raw JSON."""
    try:
        return await handler(request)
    except PageError as error:
        log.info("page refused", extra={"status": error.status, "reason": error.reason})
        return _error_page(request, error.status, error.title, error.message)
    except ApiError as error:
        if error.status == 401:
            raise login_redirect(request) from None
        log.info("api refused", extra={"status": error.status, "reason": error.reason})
        response = _error_page(request, _page_status(error), _api_title(error), error.message)
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        title, message = _STATUS_MESSAGES.get(exc.status, ("Request refused", exc.reason))
        response = _error_page(request, exc.status, title, message)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error")
        return _error_page(
            request,
            500,
            "Something went wrong",
            "Something went wrong on our side. Please try again in a moment.",
        )


def _page_status(error: ApiError) -> int:
    if error.status in (400, 403, 404, 409, 429, 503):
        return error.status
    return 502 if error.status >= 500 or error.status < 400 else error.status


def _api_title(error: ApiError) -> str:
    if error.status == 403:
        return "Not allowed"
    if error.status == 404:
        return "Not found"
    if error.status >= 500:
        return "Temporarily unavailable"
    return "That did not work"


def _error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    try:
        return render(
            request,
            "error.html",
            {"title": title, "message": message},
            viewer=viewer(request),
            status=status,
        )
    except Exception:
        log.exception("error page could not be rendered")
        return web.Response(status=status, text=f"{title}. {message}")
