"""keygate's own cookies stay between the browser and keygate.

``kg_session`` (and the admin UI's ``kg_csrf``, ``kg_ui_csrf`` and ``kg_device``, in both
spellings, see :data:`keygate_core.headers.KEYGATE_COOKIES`) open the management API to whoever
holds them, or ease their sign-ins. The
gateway removes them from the ``Cookie`` header it sends to the app and to URL upstreams, and
drops a ``Set-Cookie`` from those upstreams that would set one (a session fixation or a
login-CSRF otherwise). keygate's own services still get and set them.

Names match in any letter case. Both checks first look for ``kg_`` in the lower-cased text, so
requests and responses without keygate's cookies pay one substring search per header.
"""

from __future__ import annotations

from multidict import CIMultiDict

from keygate_core.headers import KEYGATE_COOKIES

#: Every keygate cookie name contains this; text without it holds none of them.
_MARK = "kg_"


def _is_keygate(pair: str) -> bool:
    # "name=value", or a bare "name" some servers read as a cookie of that name. A nameless
    # "=kg_session=x" is sent back by browsers as "kg_session=x": read past the empty name.
    pair = pair.strip(" \t")
    if pair.startswith("="):
        pair = pair[1:].lstrip(" \t")
    return pair.split("=", 1)[0].rstrip(" \t").lower() in KEYGATE_COOKIES


def drop_keygate_cookies(headers: CIMultiDict[str]) -> None:
    """Remove keygate's cookies from every ``Cookie`` header in ``headers`` (changed in place).

    Each header is split at ``;``; a pair goes when its name, trimmed and in any case, is one
    of keygate's (``kg_session_x`` or ``my_kg_session`` are other cookies and stay). A header
    left empty is removed; the others keep their order, rejoined with ``"; "``.
    """
    values = headers.getall("Cookie", ())
    if not any(may_name_keygate_cookie(value) for value in values):
        return
    kept = []
    for value in values:
        pairs = value.split(";")
        remaining = [p.strip(" \t") for p in pairs if not _is_keygate(p)]
        if len(remaining) == len(pairs):
            kept.append(value)
        elif any(remaining):
            kept.append("; ".join(p for p in remaining if p))
    del headers["Cookie"]
    for value in kept:
        headers.add("Cookie", value)


def may_name_keygate_cookie(cookie: str) -> bool:
    """Whether a ``Cookie`` value may hold one of keygate's cookies (when not, it goes on as
    it is, and :func:`drop_keygate_cookies` changes nothing)."""
    return _MARK in cookie.lower()


def sets_keygate_cookie(set_cookie: str) -> bool:
    """Whether a ``Set-Cookie`` value would set one of keygate's cookies."""
    return _MARK in set_cookie.lower() and _is_keygate(set_cookie.split(";", 1)[0])
