"""Local login sessions: password check in Postgres, session records in Redis.

A session id is 256 random bits, shown only to the browser (in the ``kg_session`` cookie). Redis
holds ``kg:sess:{<sha256(id)>}`` → ``{"userId", "email", "createdAt"}`` with the session's TTL,
so even a Redis dump yields no usable cookie. The record is sealed with a MAC
(:mod:`keygate_core.session_record`), so nobody without the internal secret can write one. The
gateway's ``local`` authenticator reads the same key. Every login mints a new id (no
fixation); logout deletes the record server-side. Each person's session keys are also indexed
(:mod:`introspector.session_index`) so deactivation or a new password ends all of them.

A deactivated person cannot sign in (the same 401 as a wrong password). Deactivation and login
may race: a login that checked the password just before the deactivation committed would write
its session just after the purge read the index. So login indexes the session *first*, then
checks in Postgres that the person is still active, and deletes the session and refuses if not:
either the purge sees the indexed session, or the login sees the deactivation.

Sign-ins are gated (see :mod:`introspector.attempts`) per (e-mail, address) pair, per e-mail
with a much higher budget, and per address for every attempt: wrong passwords from one address
never lock the owner out at another. A browser that signed in to the account before presents its
device token (:mod:`introspector.device_cookies`) and is counted per device instead of per
e-mail, so guesses spread over many addresses do not lock it out either. The password is
verified without holding a Postgres connection, so sign-ins queuing for argon2 never starve the
pool.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from introspector.attempts import FailedAttempts, Limit
from introspector.device_cookies import DeviceCookies
from introspector.errors import KeygateError, TooManyAttempts, Unavailable
from introspector.hashing import SecretHasher
from introspector.session_index import SessionIndex
from introspector.users import normalise_email
from keygate_core.redis_keys import session_key
from keygate_core.session_record import open_session, seal_session


class InvalidCredentials(KeygateError):
    """Unknown e-mail, wrong password or no password: deliberately indistinguishable."""

    status = 401
    reason = "invalid_credentials"
    title = "Invalid credentials"


@dataclass(frozen=True, repr=False)
class NewSession:
    """A freshly created session; ``session_id`` goes to the browser only."""

    session_id: str
    user_id: str
    email: str
    expires_at: datetime
    #: A new device token for the browser (see :mod:`introspector.device_cookies`).
    device_token: str
    device_expires_at: datetime


class SessionStore:
    """Creates and revokes local sessions."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        hasher: SecretHasher,
        attempts: FailedAttempts,
        ttl_seconds: int,
        record_key: bytes,
        devices: DeviceCookies,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._record_key = record_key
        self._devices = devices
        self._hasher = hasher
        self._attempts = attempts
        self._ttl = ttl_seconds
        self.index = SessionIndex(redis, ttl_seconds)
        # Verified when the e-mail is unknown, so both paths cost one argon2 run.
        self._decoy = hasher.hash(secrets.token_urlsafe(16))

    async def _limits(
        self, email: str, address: str | None, device_token: str | None
    ) -> tuple[list[Limit], Limit | None]:
        """The failure counters of this sign-in, and the address's sign-in rate.

        A genuine device token for ``email`` whose own counter is not spent replaces the
        per-e-mail counters with its own; a locked one counts as none.
        """
        device = self._devices.device_id(device_token, email) if device_token else None
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        failures, rate = self._attempts.for_login(account, address)
        if device is not None:
            per_device = self._attempts.for_device(device)
            if await self._attempts.blocked([per_device]) is None:
                return [per_device], rate
        return failures, rate

    async def login(
        self, email: str, password: str, address: str | None, device_token: str | None = None
    ) -> NewSession:
        """Check the password and open a session, or raise InvalidCredentials / TooManyAttempts."""
        try:
            email = normalise_email(email)
        except KeygateError:
            raise InvalidCredentials("incorrect e-mail or password") from None
        failures, rate = await self._limits(email, address, device_token)
        gated = failures if rate is None else [*failures, rate]
        async with self._attempts.gate(gated) as blocked_by:
            if blocked_by is not None:
                raise TooManyAttempts("too many sign-in attempts; wait a minute", retry_after=60)
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT id, email, password_hash, deactivated_at FROM users WHERE email = $1",
                    email,
                )
            stored = (
                row["password_hash"] if row is not None and row["password_hash"] else self._decoy
            )
            matches = await self._hasher.verify_async(stored, password)
            if (
                row is None
                or row["password_hash"] is None
                or row["deactivated_at"] is not None
                or not matches
            ):
                await self._attempts.record(gated)
                raise InvalidCredentials("incorrect e-mail or password")
            if rate is not None:
                await self._attempts.record([rate])
        session_id, now = await self._open(row["id"], row["email"])
        return NewSession(
            session_id,
            str(row["id"]),
            row["email"],
            now + timedelta(seconds=self._ttl),
            self._devices.issue(email, now=now.timestamp()),
            now + timedelta(seconds=self._devices.max_age_seconds),
        )

    async def _open(self, user_id: UUID, email: str) -> tuple[str, datetime]:
        """Write and index a new session, then make sure its person was not deactivated
        meanwhile (see the module docstring); the session id and when it was made."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        record = {"userId": str(user_id), "email": email, "createdAt": now.isoformat()}
        key = session_key(session_id)
        try:
            await self._redis.set(key, seal_session(self._record_key, key, record), ex=self._ttl)
            await self.index.add(user_id, key)
        except (RedisError, OSError, TimeoutError):
            raise Unavailable("sessions are unavailable right now; try again shortly") from None
        async with self._pool.acquire() as conn:
            active = await conn.fetchval(
                "SELECT deactivated_at IS NULL FROM users WHERE id = $1", user_id
            )
        if not active:
            await self.revoke(session_id)
            raise InvalidCredentials("incorrect e-mail or password")
        return session_id, now

    async def revoke(self, session_id: str) -> None:
        """End a session (idempotent); :class:`Unavailable` when Redis cannot be reached."""
        key = session_key(session_id)
        try:
            # GET then DEL, not GETDEL: that needs Redis 6.2, and keygate supports 6.0.
            raw = await self._redis.get(key)
            await self._redis.delete(key)
            record = None if raw is None else open_session((self._record_key,), key, raw)
            if record is not None and isinstance(record.get("userId"), str):
                await self.index.remove(record["userId"], key)
        except (RedisError, OSError, TimeoutError):
            raise Unavailable("sessions are unavailable right now; try again shortly") from None
