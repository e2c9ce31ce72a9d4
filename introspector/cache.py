"""The Redis cache in front of Postgres and argon2.

One key per token id, ``kg:tok:{<public_id>}`` (hash-tagged for Redis Cluster). An active entry
holds the token's claims and an HMAC of its secret — never the token or the secret — so a request
with the right secret is answered with one Redis read and no argon2, and a wrong secret for a
cached token is refused without argon2 too. Inactive entries (unknown, revoked, expired) are kept
briefly so repeated bad tokens do not reach Postgres.

A revocation writes a *tombstone* rather than deleting the key, and active entries are written
with ``NX``, so an introspection that read Postgres just before a revoke cannot re-populate the
cache with the revoked token afterwards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from keygate_core.introspection_result import IntrospectionResult
from keygate_core.redis_keys import token_key


def derive_hmac_key(internal_secret: str) -> bytes:
    """The cache HMAC key, derived from the internal secret (domain-separated)."""
    return hmac.new(internal_secret.encode(), b"keygate cache hmac v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class CacheEntry:
    """What the cache knows about one token id."""

    state: str  # "active", or an inactive reason: "invalid" (unknown id), "revoked", "expired"
    mac: str | None = None
    claims: dict[str, Any] | None = None


class TokenCache:
    """Reads and writes cache entries; Redis errors propagate to the caller, who degrades."""

    def __init__(
        self, redis: aioredis.Redis, hmac_key: bytes, ttl_seconds: int, negative_ttl_seconds: int
    ) -> None:
        self._redis = redis
        self._hmac_key = hmac_key
        self._key_id = hashlib.sha256(hmac_key).hexdigest()[:8]
        self.ttl_seconds = ttl_seconds
        self.negative_ttl_seconds = negative_ttl_seconds

    def mac(self, secret: str) -> str:
        """HMAC-SHA256 of a secret under the cache key."""
        return hmac.new(self._hmac_key, secret.encode(), hashlib.sha256).hexdigest()

    def matches(self, entry: CacheEntry, secret: str) -> bool:
        """Whether ``secret`` is the one whose HMAC ``entry`` holds (constant time)."""
        return entry.mac is not None and hmac.compare_digest(entry.mac, self.mac(secret))

    async def get(self, public_id: str) -> CacheEntry | None:
        """The entry for ``public_id``, or ``None`` when nothing is cached."""
        raw = await self._redis.get(token_key(public_id))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            state = data["state"]
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treat as a miss and let Postgres answer
        if state == "active" and data.get("kid") != self._key_id:
            # Written under another internal secret (a rotation): its HMAC proves nothing.
            return None
        return CacheEntry(state=state, mac=data.get("mac"), claims=data.get("claims"))

    async def put_active(
        self, public_id: str, secret: str, result: IntrospectionResult, now: float
    ) -> None:
        """Cache a verified token until the TTL or its expiry, whichever comes first."""
        ttl = self.ttl_seconds
        if result.expires_at is not None:
            ttl = min(ttl, int(result.expires_at - now))
        if ttl <= 0:
            return
        claims = {
            f.name: getattr(result, f.name)
            for f in dataclasses.fields(result)
            if f.name not in ("active", "reason")
        }
        value = json.dumps(
            {"state": "active", "kid": self._key_id, "mac": self.mac(secret), "claims": claims}
        )
        await self._redis.set(token_key(public_id), value, ex=ttl, nx=True)

    async def put_inactive(self, public_id: str, reason: str) -> None:
        """Remember briefly that ``public_id`` is unknown, revoked or expired."""
        ttl = self.negative_ttl_seconds if reason == "invalid" else self.ttl_seconds
        await self._redis.set(token_key(public_id), json.dumps({"state": reason}), ex=ttl)

    async def tombstone(self, public_id: str) -> None:
        """Mark ``public_id`` revoked, replacing any active entry."""
        await self._redis.set(
            token_key(public_id), json.dumps({"state": "revoked"}), ex=self.ttl_seconds
        )
