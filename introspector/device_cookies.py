"""Device tokens: proof that a browser signed in to an account before (OWASP "Slow Down Online
Guessing Attacks with Device Cookies").

After each successful sign-in the introspector issues ``v1.<nonce>.<issued>.<mac>``: 128 random
bits, the issue time in epoch seconds, and an HMAC-SHA256 under a key derived from the internal
secret over the account's normalised e-mail, the nonce and the time. The admin UI keeps it in the
``kg_device`` cookie and hands it back on the next sign-in. A token the MAC, the e-mail and the
age accept exempts that sign-in from the per-e-mail budget and the per-(e-mail, address) lock;
it is counted per device instead (:meth:`FailedAttempts.for_device`). The e-mail is in the MAC
only, never in the token. Tokens signed with the previous internal secret verify during a
rotation; new ones are signed with the current secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

from keygate_core.internal_secret import InternalSecrets

#: What the MAC key is derived for (see :meth:`InternalSecrets.derive`).
KEY_LABEL = b"keygate/device-cookie/v1"
#: Clock skew tolerated between introspectors for a token issued "in the future".
_SKEW_SECONDS = 300
_TOKEN = re.compile(r"v1\.([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def device_cookie_keys(secrets_: InternalSecrets) -> tuple[bytes, ...]:
    """The device-token keys: sign with the first; verify with any (the previous secret's too)."""
    return secrets_.derive(KEY_LABEL)


def _mac(key: bytes, email: str, nonce: str, issued: str) -> str:
    message = f"v1\n{email}\n{nonce}\n{issued}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class DeviceCookies:
    """Issues and checks device tokens; ``max_age_seconds`` is how long one is accepted."""

    def __init__(self, keys: tuple[bytes, ...], max_age_seconds: int) -> None:
        self._keys = keys
        self.max_age_seconds = max_age_seconds

    def issue(self, email: str, *, now: float | None = None) -> str:
        """A new token for the account with the normalised ``email``."""
        nonce = secrets.token_urlsafe(16)
        issued = str(int(time.time() if now is None else now))
        return f"v1.{nonce}.{issued}.{_mac(self._keys[0], email, nonce, issued)}"

    def device_id(self, token: str, email: str) -> str | None:
        """The device the token names (a digest of its nonce, for counter keys) when it is
        genuine, for ``email`` and not expired; else ``None``."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        nonce, issued, presented = match.groups()
        age = time.time() - int(issued)
        if not -_SKEW_SECONDS <= age < self.max_age_seconds:
            return None
        genuine = False
        for key in self._keys:
            expected = _mac(key, email, nonce, issued)
            genuine |= hmac.compare_digest(presented.encode(), expected.encode())
        if not genuine:
            return None
        return hashlib.sha256(nonce.encode()).hexdigest()[:32]
