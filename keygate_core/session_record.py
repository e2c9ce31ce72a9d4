"""The session record the introspector writes to Redis and the gateway reads, sealed with a MAC.

Redis is not trusted to vouch for people: anyone able to write to it could otherwise store
``{"userId": <an admin's id>}`` under the hash of a cookie of their choosing. So the value is
``v1.<hex HMAC-SHA256>.<JSON>``, the MAC keyed by a key derived from the internal secret and
computed over the record's Redis key and its JSON; a record moved to another cookie's key, edited
or written by anyone else fails it and is no session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from keygate_core.internal_secret import InternalSecrets

#: What the MAC key is derived for (see :meth:`InternalSecrets.derive`).
KEY_LABEL = b"keygate/session-record/v1"
_VERSION = "v1."
_MAC_LENGTH = 64


def session_record_keys(secrets: InternalSecrets) -> tuple[bytes, ...]:
    """The record keys: seal with the first; open with any (the previous secret's too)."""
    return secrets.derive(KEY_LABEL)


def _mac(key: bytes, redis_key: str, payload: str) -> str:
    message = f"{redis_key}\n{payload}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal_session(key: bytes, redis_key: str, record: Mapping[str, Any]) -> str:
    """The value to store under ``redis_key`` for ``record``."""
    payload = json.dumps(record, separators=(",", ":"))
    return f"{_VERSION}{_mac(key, redis_key, payload)}.{payload}"


def open_session(
    keys: tuple[bytes, ...], redis_key: str, raw: bytes | str
) -> dict[str, Any] | None:
    """The record stored as ``raw`` under ``redis_key``, or ``None`` when no key's MAC fits
    (forged, edited, moved, or written by a keygate from before records were sealed)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not text.startswith(_VERSION):
        return None
    mac, dot, payload = text[len(_VERSION) :].partition(".")
    if len(mac) != _MAC_LENGTH or not dot:
        return None
    fits = False
    for key in keys:
        fits |= hmac.compare_digest(_mac(key, redis_key, payload).encode(), mac.encode())
    if not fits:
        return None
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
