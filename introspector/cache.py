"""The Redis cache in front of Postgres and argon2.

One key per token id, ``kg:tok:{<public_id>}`` (hash-tagged for Redis Cluster). An active entry
holds the token's claims and an HMAC of its secret — never the token or the secret — so a request
with the right secret is answered with one Redis read and no argon2, and a wrong secret for a
cached token is refused without argon2 too. Inactive entries (unknown, revoked, expired) are kept
briefly so repeated bad tokens do not reach Postgres.

Redis is not trusted with identities: every entry is stored as ``<key id>.<mac>.<json>``, the MAC
covering the public id and the whole JSON (state, claims, expiry, secret HMAC) under a key
derived from the internal secret. An entry whose MAC fails is a miss (counted, logged), so
whoever can write Redis cannot change a token's user, scope or workspace. An entry made under
another key (a rotation) is a plain miss.

A revocation writes a *tombstone* rather than deleting the key, and active entries are written
with ``NX``, so an introspection that read Postgres just before a revoke cannot re-populate the
cache with the revoked token afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from introspector.keyed_mac import CACHE_ENTRY, KeyedMac
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.redis_keys import token_key

log = logging.getLogger("keygate.cache")


def derive_cache_mac(internal_secret: str) -> KeyedMac:
    """The cache's MAC, keyed by a key derived from the internal secret (domain-separated)."""
    return KeyedMac.derive(internal_secret, CACHE_ENTRY)


@dataclass(frozen=True)
class CacheEntry:
    """What the cache knows about one token id."""

    state: str  # "active", or an inactive reason: "invalid" (unknown id), "revoked", "expired"
    mac: str | None = None
    claims: dict[str, Any] | None = None


class TokenCache:
    """Reads and writes cache entries; Redis errors propagate to the caller, who degrades."""

    def __init__(
        self,
        redis: aioredis.Redis,
        signer: KeyedMac,
        ttl_seconds: int,
        negative_ttl_seconds: int,
        on_rejected: Callable[[], None] = lambda: None,
    ) -> None:
        self._redis = redis
        self._signer = signer
        self._on_rejected = on_rejected
        self.ttl_seconds = ttl_seconds
        self.negative_ttl_seconds = negative_ttl_seconds

    def mac(self, secret: str) -> str:
        """HMAC-SHA256 of a secret under the cache key."""
        return self._signer.sign(secret)

    def matches(self, entry: CacheEntry, secret: str) -> bool:
        """Whether ``secret`` is the one whose HMAC ``entry`` holds (constant time)."""
        return entry.mac is not None and self._signer.verify(entry.mac, secret)

    def _seal(self, public_id: str, data: dict[str, Any]) -> str:
        body = json.dumps(data, separators=(",", ":"))
        return f"{self._signer.key_id}.{self._signer.sign(public_id + chr(0) + body)}.{body}"

    def _open(self, public_id: str, raw: bytes | str) -> dict[str, Any] | None:
        """The entry's JSON when its MAC holds; ``None`` (a miss) otherwise."""
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        key_id, _, rest = text.partition(".")
        mac, _, body = rest.partition(".")
        if key_id != self._signer.key_id:
            return None  # another key (a rotation, or the format before MACs): just a miss
        if not self._signer.verify(mac, public_id + chr(0) + body):
            self._on_rejected()
            log.warning(
                "cache entry failed its MAC; ignored", extra={"token_start": f"kg_{public_id}"}
            )
            return None
        data = json.loads(body)
        return data if isinstance(data, dict) else None

    async def get(self, public_id: str) -> CacheEntry | None:
        """The entry for ``public_id``, or ``None`` when nothing (believable) is cached."""
        raw = await self._redis.get(token_key(public_id))
        if raw is None:
            return None
        try:
            data = self._open(public_id, raw)
            if data is None:
                return None
            state = data["state"]
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treat as a miss and let Postgres answer
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
        value = self._seal(
            public_id, {"state": "active", "mac": self.mac(secret), "claims": claims}
        )
        await self._redis.set(token_key(public_id), value, ex=ttl, nx=True)

    async def put_inactive(self, public_id: str, reason: str) -> None:
        """Remember briefly that ``public_id`` is unknown, revoked or expired."""
        ttl = self.negative_ttl_seconds if reason == "invalid" else self.ttl_seconds
        await self._redis.set(
            token_key(public_id), self._seal(public_id, {"state": reason}), ex=ttl
        )

    async def tombstone(self, public_id: str) -> None:
        """Mark ``public_id`` revoked, replacing any active entry."""
        await self._redis.set(
            token_key(public_id), self._seal(public_id, {"state": "revoked"}), ex=self.ttl_seconds
        )
