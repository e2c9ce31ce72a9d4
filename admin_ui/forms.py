"""Reading submitted forms, after the CSRF checks in :mod:`admin_ui.csrf` have passed."""

from __future__ import annotations

import logging

from aiohttp import web
from multidict import MultiMapping

from admin_ui import csrf
from admin_ui.appkeys import CSRF_KEYS
from admin_ui.cookies import cookies
from admin_ui.errors import CsrfFailed
from admin_ui.identity import Viewer

log = logging.getLogger("keygate.admin_ui")

#: A submitted form; only its text fields are read (see :func:`text`).
Form = MultiMapping[object]


def text(form: Form, name: str, *, limit: int = 1000) -> str:
    """A text field's value ('' when missing, a file, or longer than ``limit``)."""
    value = form.get(name)
    if not isinstance(value, str) or len(value) > limit:
        return ""
    return value


def _check_origin(request: web.Request) -> None:
    https = cookies(request).https
    origin = csrf.own_origin(request.headers, request.scheme, request.host, https=https)
    try:
        csrf.check_origin(request.headers, origin)
    except csrf.CsrfRejected as exc:
        log.warning("form refused", extra={"reason": exc.reason, "path": request.path})
        raise CsrfFailed(exc.reason) from None


async def session_form(request: web.Request, viewer: Viewer | str) -> Form:
    """The form of a signed-in person (or of a session cookie), else :class:`CsrfFailed`."""
    session_id = viewer if isinstance(viewer, str) else viewer.session_id
    _check_origin(request)
    form = await request.post()
    presented = text(form, csrf.FIELD, limit=128)
    keys = request.app[CSRF_KEYS]
    if not any(csrf.verify_session_token(key, session_id, presented) for key in keys):
        log.warning("form refused", extra={"reason": "bad_csrf_token", "path": request.path})
        raise CsrfFailed("bad_csrf_token")
    return form


async def login_form(request: web.Request) -> Form:
    """The login form, checked against its double-submit cookie, or :class:`CsrfFailed`."""
    _check_origin(request)
    form = await request.post()
    cookie = request.cookies.get(cookies(request).login_csrf, "")
    if not csrf.verify_login_token(cookie, text(form, csrf.FIELD, limit=128)):
        log.warning("form refused", extra={"reason": "bad_login_csrf", "path": request.path})
        raise CsrfFailed("bad_login_csrf")
    return form
