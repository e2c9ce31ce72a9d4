"""Cross-site request forgery defences for every form the admin UI accepts.

Three independent checks, all of which must pass (OWASP CSRF cheat sheet, "defence in depth"):

* **Synchronizer token** for signed-in forms: ``HMAC-SHA256(key, kg_session)`` in hex, where the
  key is derived from ``KEYGATE_INTERNAL_SECRET``. It needs no server-side state, changes with
  every login (a new session id is minted each time) and cannot be computed without the secret.
* **Double-submit cookie** for the login form, which has no session yet: a random ``kg_csrf``
  cookie (HttpOnly, SameSite=Strict) must equal the hidden ``csrf`` field.
* **Signed double-submit** for people signed in to the protected app instead of keygate
  (upstream sessions), who have no ``kg_session``: the synchronizer token is computed from a
  random ``kg_ui_csrf`` cookie (HttpOnly, SameSite=Strict) bound to their user id.
* **Fetch metadata / Origin**: ``Sec-Fetch-Site: cross-site`` is refused, and an ``Origin``
  header, when present, must be the request's own origin as the gateway saw it.

Everything here is pure (headers in, verdict out), so the rule table is unit-tested directly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from keygate_core.internal_secret import InternalSecrets

# The cookies' names (and their __Host- spellings) are in keygate_core.headers and
# admin_ui.cookies.
#: Name of the hidden form field carrying either token.
FIELD = "csrf"
_KEY_LABEL = b"keygate/admin-ui/csrf/v1"


class CsrfRejected(Exception):
    """A form submission failed a CSRF check; ``reason`` says which (for logs, not people)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def derive_key(internal_secret: str) -> bytes:
    """The CSRF key: a label-bound HMAC of the shared secret, so it is used for nothing else."""
    return hmac.new(internal_secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def derive_keys(secrets: InternalSecrets) -> tuple[bytes, ...]:
    """The CSRF key of each accepted internal secret, the current one's first."""
    return secrets.derive(_KEY_LABEL)


def session_token(key: bytes, session_id: str) -> str:
    """The synchronizer token for the session ``session_id`` (hex)."""
    return hmac.new(key, session_id.encode(), hashlib.sha256).hexdigest()


def verify_session_token(key: bytes, session_id: str, presented: str) -> bool:
    """Whether ``presented`` is the synchronizer token of ``session_id`` (constant time)."""
    if not session_id or not presented:
        return False
    expected = session_token(key, session_id)
    return hmac.compare_digest(expected.encode(), presented.encode())


def new_login_token() -> str:
    """A fresh random double-submit value for the login form (256 bits)."""
    return secrets.token_urlsafe(32)


def verify_login_token(cookie_value: str, presented: str) -> bool:
    """Whether the login form's field matches its cookie (constant time, both non-empty)."""
    if not cookie_value or not presented:
        return False
    return hmac.compare_digest(cookie_value.encode(), presented.encode())


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a trailing slash or a default port."""
    text = origin.strip().lower().rstrip("/")
    scheme, sep, _ = text.partition("://")
    default_port = _DEFAULT_PORTS.get(scheme)
    if sep and default_port and text.endswith(default_port):
        text = text[: -len(default_port)]
    return text


def own_origin(headers: Mapping[str, str], scheme: str, host: str, *, https: bool = False) -> str:
    """The origin the browser is talking to: ``X-Forwarded-Proto``/``-Host`` from the gateway.

    Falls back to the request's own scheme and ``Host`` when the service is reached directly.
    Only the first (client-most) value of a comma-separated forwarded header counts. With
    ``https`` (``KEYGATE_PUBLIC_HTTPS``) the scheme is ``https`` whatever the headers say: TLS
    may end at an ingress the gateway does not trust, which then reports ``http``.
    """
    proto = "https" if https else headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
    proto = proto or scheme
    forwarded_host = headers.get("X-Forwarded-Host", "").split(",")[0].strip() or host
    return normalise_origin(f"{proto}://{forwarded_host}")


def check_origin(headers: Mapping[str, str], origin: str) -> None:
    """Refuse cross-site submissions by their fetch metadata and ``Origin`` header.

    * ``Sec-Fetch-Site: cross-site`` is refused; ``same-origin``, ``same-site``, ``none`` and an
      absent header pass (browsers send none to plain-HTTP hosts other than localhost).
    * An ``Origin`` header, when present, must equal ``origin`` (scheme, host and port).
    * Except ``Origin: null``: browsers send it for every POST from a page whose
      ``Referrer-Policy`` is ``no-referrer`` (Fetch standard, "append a request `Origin`
      header") — which is every keygate page. It then proves nothing either way, so when the
      browser also sends fetch metadata, only ``same-origin`` is accepted; without fetch
      metadata the synchronizer/double-submit token and the SameSite cookies decide.
    """
    site = headers.get("Sec-Fetch-Site", "").strip().lower()
    if site == "cross-site":
        raise CsrfRejected("cross_site_fetch")
    presented = headers.get("Origin")
    if presented is None:
        return
    if presented.strip().lower() == "null":
        if site and site != "same-origin":
            raise CsrfRejected("null_origin_not_same_origin")
        return
    if normalise_origin(presented) != normalise_origin(origin):
        raise CsrfRejected("origin_mismatch")
