"""The admin UI's cookies as this deployment names and flags them.

With ``KEYGATE_PUBLIC_HTTPS`` every cookie is ``Secure``, has ``Path=/`` and is named with the
``__Host-`` prefix (``__Host-kg_session``), which browsers accept only in exactly that form: no
plain-HTTP page and no sibling subdomain can set or shadow it. The setting, not a request header,
decides: behind TLS that ends at an ingress the request itself arrives over plain HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from keygate_core import headers as wire

#: What pages send over HTTPS: browsers then refuse plain HTTP to this host for a year.
HSTS = "max-age=31536000"


@dataclass(frozen=True)
class Cookies:
    """Names and attributes of the admin UI's cookies (see :mod:`keygate_core.headers`)."""

    https: bool

    @property
    def session(self) -> str:
        """keygate's login session (``kg_session``)."""
        return wire.cookie_name(wire.SESSION_COOKIE, self.https)

    @property
    def login_csrf(self) -> str:
        """The login form's double-submit token (``kg_csrf``)."""
        return wire.cookie_name(wire.LOGIN_CSRF_COOKIE, self.https)

    @property
    def app_session_csrf(self) -> str:
        """The form-token basis of people signed in to the app (``kg_ui_csrf``)."""
        return wire.cookie_name(wire.APP_SESSION_CSRF_COOKIE, self.https)

    @property
    def device(self) -> str:
        """Proof that this browser signed in before (``kg_device``), sent back at sign-in."""
        return wire.cookie_name(wire.DEVICE_COOKIE, self.https)

    def attributes(self, samesite: str, path: str = "/") -> dict[str, Any]:
        """``set_cookie``/``del_cookie`` keyword arguments: HttpOnly, ``samesite``, and over
        HTTPS ``Secure`` with ``Path=/`` (a ``__Host-`` cookie has no other path)."""
        return {
            "path": "/" if self.https else path,
            "httponly": True,
            "samesite": samesite,
            "secure": self.https,
        }


COOKIES = web.AppKey("cookies", Cookies)


def cookies(request: web.Request) -> Cookies:
    """The cookies of the application serving ``request``."""
    return request.app[COOKIES]
