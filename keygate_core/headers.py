"""The wire contract between keygate's services: header names, keygate's cookies, the
management API's path, and the rules for the request id and the reported client address.

The gateway writes these headers for keygate's own services and strips every spelling of them
from what clients send; the introspector and the admin UI believe them only next to the internal
secret. Each fact is defined here once; the services import it.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
from collections.abc import Mapping

#: The shared secret that proves a request came through the gateway.
INTERNAL_SECRET = "X-Keygate-Internal-Secret"
#: The problem reason the introspector answers a request without an accepted internal secret
#: with, so the admin UI can tell a misconfigured secret from a person's wrong password.
INTERNAL_SECRET_REFUSED = "internal_secret_refused"
#: Set to :data:`INTERNAL_SECRET_REFUSED` on that answer, so a gateway forwarding a client's call
#: to the introspector can tell "this gateway's secret was refused" (a rotation done in the wrong
#: order: 503, keep the token) from a 401 about the client's own credential, without reading the
#: body.
REFUSED = "X-Keygate-Refused"
#: The end client's address as the gateway determined it (never the TCP peer).
CLIENT_ADDRESS = "X-Keygate-Client-Address"
#: ``upstream`` when the protected app's session check vouched for the person: ``USER_ID`` is
#: then the app's user id, not keygate's.
IDENTITY_SOURCE = "X-Keygate-Identity-Source"
#: ``true`` when the app's session check said it verified the e-mail (``emailVerified: true``);
#: only then may the introspector link the person to an existing keygate user by e-mail.
EMAIL_VERIFIED = "X-Keygate-Email-Verified"
#: The per-minute limit the gateway applies to the calling token (its own, or the gateway's
#: ``KEYGATE_RATE_LIMIT_PER_MINUTE``): only the gateway knows the default, and whoami shows it.
RATE_LIMIT = "X-Keygate-Rate-Limit"

# The identity headers keygate's own services read. Their names are fixed; the names the
# protected app sees are configurable (KEYGATE_IDENTITY_HEADERS) and default to these.
USER_ID = "X-Keygate-User-Id"
EMAIL = "X-Keygate-User-Email"
WORKSPACE_ID = "X-Keygate-Workspace-Id"
TOKEN_ID = "X-Keygate-Token-Id"
TOKEN_SCOPE = "X-Keygate-Token-Scope"
AUTH_METHOD = "X-Keygate-Auth-Method"
#: The protected app's own id for the caller: ``userId`` from its session check, or the app
#: account a token's owner is linked to (``keygate users link``).
EXTERNAL_ID = "X-Keygate-External-Id"

REQUEST_ID = "X-Request-Id"
#: keygate's own login session (admin UI sign-in), looked up in Redis by a hash of its value.
SESSION_COOKIE = "kg_session"
#: The admin UI's login form double-submit token.
LOGIN_CSRF_COOKIE = "kg_csrf"
#: The admin UI's form-token basis for people signed in to the protected app instead.
APP_SESSION_CSRF_COOKIE = "kg_ui_csrf"
#: Proof that this browser signed in to an account before (a device token, see
#: docs/security-model.md): its sign-ins are not held back by guesses from elsewhere.
DEVICE_COOKIE = "kg_device"
#: Served over HTTPS (``KEYGATE_PUBLIC_HTTPS``), every keygate cookie is named with this prefix:
#: browsers then accept it only with ``Secure``, ``Path=/`` and no ``Domain`` (RFC 6265bis
#: §4.1.3.2), so neither plain HTTP nor a sibling subdomain can set or shadow it.
HOST_PREFIX = "__Host-"


def cookie_name(name: str, https: bool) -> str:
    """What keygate's cookie ``name`` is called in this deployment."""
    return HOST_PREFIX + name if https else name


#: Every name keygate's cookies have, in both spellings, lower-cased: they are keygate's alone
#: and never go to, or come from, the protected app.
KEYGATE_COOKIES = frozenset(
    cookie_name(name, https).lower()
    for name in (SESSION_COOKIE, LOGIN_CSRF_COOKIE, APP_SESSION_CSRF_COOKIE, DEVICE_COOKIE)
    for https in (False, True)
)
#: Where the introspector serves the management API (and the gateway routes it).
API_PREFIX = "/api/platform/internal"

_REQUEST_ID_RULE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def valid_request_id(value: str | None) -> str | None:
    """``value`` when it is 1–128 characters of ``[A-Za-z0-9._:-]``, else ``None``."""
    if value is not None and _REQUEST_ID_RULE.fullmatch(value):
        return value
    return None


_ID_PREFIX = ""
_ID_COUNTER = itertools.count()


def _new_id_prefix() -> None:
    # Per process: a forked gateway worker draws its own, or workers would hand out the same ids.
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = os.urandom(8).hex()
    _ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4)))


_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)


def request_id_or_new(value: str | None) -> str:
    """``value`` when it is a valid request id, else a new one: 32 hex digits, a random prefix
    drawn once per process and a counter (unique without a system call per request; request
    ids are not secrets)."""
    return valid_request_id(value) or new_request_id()


def new_request_id() -> str:
    """A new request id (see :func:`request_id_or_new`)."""
    # The counter's 8 bytes in hex: the same 16 digits as format(n, "016x"), made without the
    # format machinery (one id per relayed request). It would take 2**64 ids to overflow.
    return _ID_PREFIX + next(_ID_COUNTER).to_bytes(8).hex()


def reported_client_address(headers: Mapping[str, str]) -> str | None:
    """The normalised IP address in :data:`CLIENT_ADDRESS` (IPv4-mapped IPv6 as IPv4), or
    ``None`` when absent or not an IP."""
    reported = headers.get(CLIENT_ADDRESS, "").strip()
    if not reported:
        return None
    try:
        address = ipaddress.ip_address(reported)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
