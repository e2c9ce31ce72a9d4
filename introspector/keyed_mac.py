"""HMAC-SHA256 under keys derived from the internal secret, one key per purpose.

Two things use it: the Redis cache signs each whole entry (so Redis is not a trust anchor), and
each token row holds a *fast verifier* of its secret beside the argon2id hash (so a right secret
is recognised without argon2, and therefore without the failed-attempt gates that cap argon2).
Every MAC is stored with its key's id: after a rotation of ``KEYGATE_INTERNAL_SECRET`` a MAC
made under the old key is recognised as such (not as a mismatch) and its holder falls back to
the slow path, which refreshes it.
"""

from __future__ import annotations

import hashlib
import hmac

#: Domain-separation labels: one derived key per use, so a MAC of one kind never passes for
#: another.
CACHE_ENTRY = b"keygate cache entry v2"
TOKEN_VERIFIER = b"keygate token verifier v1"


class KeyedMac:
    """HMAC-SHA256 with one derived key; MACs are lowercase hex."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        #: Names the key without revealing it (stored beside each MAC).
        self.key_id = hashlib.sha256(b"key id " + key).hexdigest()[:8]

    @classmethod
    def derive(cls, internal_secret: str, purpose: bytes) -> KeyedMac:
        """The key for ``purpose`` derived from the internal secret."""
        return cls(hmac.new(internal_secret.encode(), purpose, hashlib.sha256).digest())

    def sign(self, data: bytes | str) -> str:
        """The MAC of ``data``."""
        raw = data.encode() if isinstance(data, str) else data
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()

    def verify(self, mac: str, data: bytes | str) -> bool:
        """Whether ``mac`` is the MAC of ``data`` (constant-time comparison)."""
        return hmac.compare_digest(mac.encode(), self.sign(data).encode())
