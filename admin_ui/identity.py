"""Who is looking at a page, as the gateway vouched for it.

The gateway strips every ``X-Keygate-*`` header clients send and adds its own, together with the
internal secret the UI checks first (see :mod:`admin_ui.middlewares`). Only a ``session``
identity with its ``kg_session`` cookie counts as signed in: the CSRF token is derived from that
cookie, and a bearer token is for automation, not for this UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web

from admin_ui.api_client import Caller
from admin_ui.cookies import cookies
from keygate_core import headers as wire

#: A ``kg_ui_csrf`` value minted for this request, before the browser has the cookie.
MINTED_CSRF_BASIS = web.RequestKey("minted_csrf_basis", str)
LOGIN_PATH = "/_keygate/login"
HOME_PATH = "/settings/api-keys"
_NEXT_PREFIX = "/settings/"


@dataclass(frozen=True)
class Viewer:
    """A signed-in person: their id and e-mail, the session cookie and how to call the API."""

    user_id: str
    email: str
    session_id: str = field(repr=False)
    caller: Caller
    #: Signed in to the protected app rather than to keygate: signing out is the app's job.
    app_session: bool = False


def request_id(request: web.Request) -> str | None:
    """The gateway's ``X-Request-Id`` when it is well-formed."""
    return wire.valid_request_id(request.headers.get(wire.REQUEST_ID))


def client_address(request: web.Request) -> str | None:
    """The end client's IP address as the gateway reported it (never the TCP peer)."""
    return wire.reported_client_address(request.headers)


def has_app_session(request: web.Request) -> bool:
    """Whether the gateway vouches for a session of the protected app (upstream sessions)."""
    method = request.headers.get(wire.AUTH_METHOD, "").strip().lower()
    source = request.headers.get(wire.IDENTITY_SOURCE, "").strip().lower()
    return method == "session" and source == "upstream"


def viewer(request: web.Request) -> Viewer | None:
    """The signed-in person, or ``None`` for anyone else."""
    user_id = request.headers.get(wire.USER_ID, "").strip()
    method = request.headers.get(wire.AUTH_METHOD, "").strip().lower()
    # The gateway percent-encodes header values outside visible ASCII (gateway.pipeline.mutate).
    email = unquote(request.headers.get(wire.EMAIL, ""))
    if method != "session" or not user_id:
        return None
    if has_app_session(request):
        # No kg_session to derive form tokens from: a random per-browser cookie stands in.
        jar = cookies(request)
        basis = request.cookies.get(jar.app_session_csrf) or request.get(MINTED_CSRF_BASIS)
        if not basis:
            return None
        caller = Caller(
            user_id,
            client_address(request),
            request_id(request),
            app_session_email=email,
            app_session_email_verified=request.headers.get(wire.EMAIL_VERIFIED) == "true",
        )
        return Viewer(
            user_id=user_id,
            email=email,
            session_id=f"app:{user_id}:{basis}",
            caller=caller,
            app_session=True,
        )
    session_id = request.cookies.get(cookies(request).session, "")
    if not session_id:
        return None
    caller = Caller(user_id, client_address(request), request_id(request))
    return Viewer(user_id=user_id, email=email, session_id=session_id, caller=caller)


def login_redirect(request: web.Request) -> web.HTTPSeeOther:
    """Where an anonymous visitor goes: the login page, coming back here afterwards."""
    target = request.path_qs if request.method in ("GET", "HEAD") else HOME_PATH
    target = safe_next(target)
    return web.HTTPSeeOther(f"{LOGIN_PATH}?next={quote(target, safe='/')}")


def require_viewer(request: web.Request) -> Viewer:
    """The signed-in person; anyone else is sent to the login page."""
    found = viewer(request)
    if found is None:
        raise login_redirect(request)
    return found


def safe_next(target: str | None) -> str:
    """``target`` if it is a same-site path under ``/settings/``, else the API keys page.

    Refuses absolute and scheme-relative URLs, backslashes (which some browsers read as
    slashes), control characters and dot segments, so the login page is never an open redirect.
    """
    if not target or len(target) > 2048:
        return HOME_PATH
    if any(ord(c) < 0x21 or c in "\\\x7f" for c in target):
        return HOME_PATH
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(_NEXT_PREFIX):
        return HOME_PATH
    decoded = unquote(parts.path)
    if "//" in decoded or any(seg in (".", "..") for seg in decoded.split("/")):
        return HOME_PATH
    return target
