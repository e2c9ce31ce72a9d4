"""Deciding whether a presented token is active: cache, Postgres, argon2 — in that order.

1. Parse: malformed tokens are refused without any I/O.
2. Redis: an active entry answers by HMAC comparison (right or wrong secret, no argon2); an
   inactive entry answers at once. Redis trouble is not fatal: we carry on to Postgres.
3. Postgres (the cold path): the row's fast keyed verifier answers when it was made under the
   current key — right or wrong, no argon2 and no counter. Only a row without a current
   verifier (older than verifiers, or from before a rotation of the internal secret) needs
   argon2, gated by the failed-attempt counters and verified off the event loop; a success
   writes the verifier (and a rehash) with a compare-and-set. The result is cached.

So the counters only ever stop argon2 work: nobody's failures refuse a secret the verifier
recognises.

Postgres trouble raises (the caller answers 503) — it never turns into "inactive".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from prometheus_async.aio import time as timed
from redis.exceptions import RedisError

from introspector.attempts import FailedAttempts
from introspector.cache import CacheEntry, TokenCache
from introspector.errors import TooManyAttempts
from introspector.hashing import SecretHasher
from introspector.last_used import LastUsedRecorder
from introspector.metrics import IntrospectorMetrics
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.single_flight import SingleFlight
from keygate_core.token_format import ParsedToken, TokenFormatError, parse_token

log = logging.getLogger("keygate.introspection")

_LOOKUP = """
    SELECT t.id, t.public_id, t.user_id, u.email, u.external_id, t.workspace_id,
           t.scope::text AS scope, t.rate_limit, t.created_at, t.expires_at, t.revoked_at,
           t.token_hash, t.secret_verifier, t.secret_verifier_key_id
    FROM api_token t JOIN users u ON u.id = t.user_id
    WHERE t.public_id = $1
"""


class TokenIntrospector:
    """Answers "is this token active, and whose is it?"."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: TokenCache,
        attempts: FailedAttempts,
        hasher: SecretHasher,
        last_used: LastUsedRecorder,
        metrics: IntrospectorMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._attempts = attempts
        self._hasher = hasher
        self._last_used = last_used
        self._metrics = metrics
        self._clock = clock
        self._inflight: SingleFlight[IntrospectionResult] = SingleFlight()

    async def introspect(self, token: str, client_address: str | None) -> IntrospectionResult:
        """The result for ``token`` presented by ``client_address``.

        Raises :class:`TooManyAttempts` when the cold path is throttled, and the database's
        errors when Postgres is needed but unavailable.
        """
        try:
            parts = parse_token(token)
        except TokenFormatError:
            return self._finish(IntrospectionResult.inactive("malformed"), None)
        now = self._clock()
        entry = await self._cached(parts.public_id)
        if entry is not None:
            self._metrics.cache_hit.inc()
            return self._finish(self._from_cache(entry, parts, now), parts)
        self._metrics.cache_miss.inc()
        return self._finish(await self._verify_once(parts, client_address, now), parts)

    async def _verify_once(
        self, parts: ParsedToken, client_address: str | None, now: float
    ) -> IntrospectionResult:
        """:meth:`_from_database`, shared by concurrent requests for the very same token, so a
        burst of one cold token costs one argon2 run, not one per request."""
        return await self._inflight.run(
            (parts.public_id, self._cache.mac(parts.secret)),
            lambda: self._from_database(parts, client_address, now),
        )

    async def _cached(self, public_id: str) -> CacheEntry | None:
        try:
            return await self._cache.get(public_id)
        except (RedisError, OSError) as exc:
            self._metrics.cache_error.inc()
            log.debug("cache read failed", extra={"error": type(exc).__name__})
            return None

    def _from_cache(self, entry: CacheEntry, parts: ParsedToken, now: float) -> IntrospectionResult:
        if entry.state != "active" or entry.claims is None:
            return IntrospectionResult.inactive(entry.state)
        if not self._cache.matches(entry, parts.secret):
            return IntrospectionResult.inactive("invalid")
        result = IntrospectionResult(active=True, **entry.claims)
        if result.expires_at is not None and result.expires_at <= now:
            return IntrospectionResult.inactive("expired")
        return result

    async def _from_database(
        self, parts: ParsedToken, client_address: str | None, now: float
    ) -> IntrospectionResult:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_LOOKUP, parts.public_id)
        if row is None:
            await self._remember(parts.public_id, "invalid")
            return IntrospectionResult.inactive("invalid")
        if row["revoked_at"] is not None:
            await self._remember(parts.public_id, "revoked")
            return IntrospectionResult.inactive("revoked")
        expires_at = row["expires_at"]
        if expires_at is not None and expires_at.timestamp() <= now:
            await self._remember(parts.public_id, "expired")
            return IntrospectionResult.inactive("expired")

        verified, current = self._fast_verify(row, parts.secret)
        if verified is None:
            verified = await self._verify_slowly(row, parts, client_address)
        elif verified and (not current or self._hasher.needs_rehash(row["token_hash"])):
            await self._refresh(row, parts.secret)
        if not verified:
            return IntrospectionResult.inactive("invalid")

        result = IntrospectionResult(
            active=True,
            token_id=str(row["id"]),
            public_id=row["public_id"],
            user_id=str(row["user_id"]),
            email=row["email"],
            scope=row["scope"],
            workspace_id=None if row["workspace_id"] is None else str(row["workspace_id"]),
            rate_limit=row["rate_limit"],
            issued_at=int(row["created_at"].timestamp()),
            expires_at=None if expires_at is None else int(expires_at.timestamp()),
            external_id=row["external_id"],
        )
        try:
            await self._cache.put_active(parts.public_id, parts.secret, result, now)
        except (RedisError, OSError):
            self._metrics.cache_error.inc()
        return result

    async def _remember(self, public_id: str, reason: str) -> None:
        try:
            await self._cache.put_inactive(public_id, reason)
        except (RedisError, OSError):
            self._metrics.cache_error.inc()

    def _fast_verify(self, row: asyncpg.Record, secret: str) -> tuple[bool | None, bool]:
        """The row's verifier's answer (``None`` when it has none made under the current or,
        during a rotation, the previous key), and whether it was made under the current key."""
        key_id = row["secret_verifier_key_id"]
        hasher = self._hasher
        for verifier, current in ((hasher.token_verifier, True), (hasher.previous_verifier, False)):
            if verifier is not None and key_id == verifier.key_id:
                return verifier.verify(row["secret_verifier"], secret), current
        return None, True

    async def _verify_slowly(
        self, row: asyncpg.Record, parts: ParsedToken, client_address: str | None
    ) -> bool:
        """argon2 behind the failed-attempt gate; on success, write what the row lacks."""
        limits = self._attempts.for_token(parts.public_id, client_address)
        async with self._attempts.gate(limits) as blocked_by:
            if blocked_by is not None:
                self._metrics.verify_throttled.labels(blocked_by).inc()
                raise TooManyAttempts(
                    "too many failed authentication attempts; try again in a minute",
                    retry_after=60,
                )
            verified = await timed(
                self._metrics.argon2_duration,
                self._hasher.verify_async(row["token_hash"], parts.secret),
            )
            if not verified:
                await self._attempts.record(limits)
                return False
        await self._refresh(row, parts.secret)
        return True

    async def _refresh(self, row: asyncpg.Record, secret: str) -> None:
        """Re-hash with the current argon2 parameters when they changed, and (re)write the fast
        verifier — a compare-and-set on the hash just verified, so a concurrent change wins."""
        old_hash = row["token_hash"]
        new_hash = old_hash
        if self._hasher.needs_rehash(old_hash):
            new_hash = await self._hasher.hash_async(secret)
        verifier = self._hasher.token_verifier
        if new_hash == old_hash and verifier is None:
            return
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE api_token SET token_hash = $3, "
                "secret_verifier = coalesce($4, secret_verifier), "
                "secret_verifier_key_id = coalesce($5, secret_verifier_key_id) "
                "WHERE id = $1 AND token_hash = $2",
                row["id"],
                old_hash,
                new_hash,
                None if verifier is None else verifier.sign(secret),
                None if verifier is None else verifier.key_id,
            )

    def _finish(
        self, result: IntrospectionResult, parts: ParsedToken | None
    ) -> IntrospectionResult:
        if result.active:
            self._metrics.auth_success.inc()
            assert result.token_id is not None
            self._last_used.record(UUID(result.token_id), datetime.now(UTC))
        else:
            reason = result.reason or "invalid"
            self._metrics.auth_failure.labels(reason).inc()
            log.info(
                "token refused",
                extra={
                    "reason": reason,
                    "token_start": None if parts is None else parts.display_start,
                },
            )
        return result
