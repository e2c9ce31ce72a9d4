"""``/_keygate/login`` and ``/_keygate/logout``: local sign-in through the introspector.

The introspector checks the password and mints the session (a new id on every login, so no
session fixation); this module only moves the id into the ``kg_session`` cookie and back out,
and the device token between the ``kg_device`` cookie and the introspector: a browser that
signed in before is not held back by wrong passwords for the account from elsewhere.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from aiohttp import web

from admin_ui import csrf
from admin_ui.api_client import ApiError
from admin_ui.api_models import LoginSession
from admin_ui.appkeys import CLIENT, SETTINGS
from admin_ui.cookies import Cookies, cookies
from admin_ui.errors import CsrfFailed
from admin_ui.forms import login_form, session_form, text
from admin_ui.identity import (
    LOGIN_PATH,
    client_address,
    request_id,
    safe_next,
    viewer,
)
from admin_ui.pages import render

log = logging.getLogger("keygate.admin_ui")

LOGIN_CSRF_MAX_AGE = 3600
#: Where the login form's cookie is sent over plain HTTP (over HTTPS a __Host- cookie is at /).
LOGIN_PATHS = "/_keygate/"
_LOGIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")


def _login_page(
    request: web.Request,
    *,
    next_path: str,
    email: str = "",
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    jar = cookies(request)
    token = request.cookies.get(jar.login_csrf, "")
    if not _LOGIN_TOKEN.fullmatch(token):
        token = csrf.new_login_token()
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next": next_path, "email": email, "error": error},
        viewer=None,
        status=status,
    )
    response.set_cookie(
        jar.login_csrf, token, max_age=LOGIN_CSRF_MAX_AGE, **jar.attributes("Strict", LOGIN_PATHS)
    )
    return response


async def show_login(request: web.Request) -> web.StreamResponse:
    """The sign-in form; people already signed in go straight on."""
    next_path = safe_next(request.query.get("next"))
    if viewer(request) is not None:
        raise web.HTTPSeeOther(next_path)
    return _login_page(request, next_path=next_path)


async def submit_login(request: web.Request) -> web.StreamResponse:
    """Check the credentials with the introspector and set the session cookie."""
    try:
        form = await login_form(request)
    except CsrfFailed:
        # Usually a login page left open past its token's hour: refuse (403, nothing sent to
        # the introspector) but offer a fresh form right away instead of a dead end.
        return _login_page(
            request,
            next_path=safe_next(request.query.get("next")),
            error="This sign-in form has expired or did not come from this site. "
            "Please sign in again.",
            status=403,
        )
    next_path = safe_next(text(form, "next", limit=2048))
    email = text(form, "email", limit=320).strip()
    password = text(form, "password", limit=1024)
    if not email or not password:
        return _login_page(
            request,
            next_path=next_path,
            email=email,
            error="Enter your e-mail address and password.",
            status=400,
        )
    jar = cookies(request)
    try:
        session = await request.app[CLIENT].create_session(
            email,
            password,
            client_address=client_address(request),
            request_id=request_id(request),
            device_token=request.cookies.get(jar.device, "")[:256] or None,
        )
    except ApiError as error:
        if error.status == 401:
            message, status = "Incorrect e-mail or password.", 401
        else:
            message, status = error.message, error.status if error.status in (429, 503) else 502
        response = _login_page(
            request, next_path=next_path, email=email, error=message, status=status
        )
        if error.retry_after is not None and status in (429, 503):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    log.info("signed in", extra={"user_id": session.user_id})
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(
        jar.session,
        session.session_id,
        max_age=request.app[SETTINGS].session_ttl_seconds,
        **jar.attributes("Lax"),
    )
    _set_device_cookie(response, jar, session)
    # The login token has done its job; a fresh one is made for the next sign-in.
    response.del_cookie(jar.login_csrf, **jar.attributes("Strict", LOGIN_PATHS))
    raise response


def _set_device_cookie(response: web.StreamResponse, jar: Cookies, session: LoginSession) -> None:
    """Remember that this browser signed in to the account (kept at sign-out: that is its use)."""
    if session.device_token is None or session.device_expires_at is None:
        return
    max_age = int((session.device_expires_at - datetime.now(UTC)).total_seconds())
    if max_age > 0:
        attributes = jar.attributes("Strict", LOGIN_PATHS)
        response.set_cookie(jar.device, session.device_token, max_age=max_age, **attributes)


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session at the introspector, clear the cookie, back to the login page."""
    jar = cookies(request)
    session_id = request.cookies.get(jar.session, "")
    if session_id:
        # Checked against the cookie itself, so a session the gateway already forgot (expired,
        # revoked elsewhere) can still sign out cleanly — but only from a genuine form.
        await session_form(request, session_id)
        # If this fails the session stays valid server-side: the error page says so rather
        # than clearing the cookie and pretending the person is signed out.
        await request.app[CLIENT].revoke_session(session_id, request_id=request_id(request))
        current = viewer(request)
        log.info("signed out", extra={"user_id": current.user_id if current else None})
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(jar.session, **jar.attributes("Lax"))
    raise response
