"""Counting attempts, so nobody can make the introspector burn argon2 time.

The counters cap argon2 work; they never decide whether a secret is right. Only the expensive
path is gated: a token secret that its fast keyed verifier (or the cache's HMAC) recognises
passes before any counter is read, so nobody's wrong guesses lock a token's owner out. Sign-ins
always cost argon2 (passwords are low-entropy; argon2 is what protects them), so they are gated
per (e-mail, address) pair, with a much higher budget per e-mail across all addresses and a rate
limit per address: one address's wrong passwords cannot lock the owner out at another address.
A sign-in with a device token (:mod:`introspector.device_cookies`) is counted per device instead
of per e-mail, so a guess spread over many addresses does not lock the owner's browser out.

Addresses are counted by :func:`address_bucket`: IPv4-mapped IPv6 as its IPv4 address, IPv6 by
its /64 (configurable), since one IPv6 client controls a whole /64. Counters live in Redis
(shared by every introspector) with an in-process fallback while Redis is unreachable.
Verifications under way count as failures until they finish (see :meth:`FailedAttempts.gate`):
otherwise a burst of concurrent wrong secrets would all pass the check before the first failure
was counted, and each would cost an argon2 run.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from keygate_core import redis_keys

WINDOW_SECONDS = 60
_LOCAL_MAX_KEYS = 100_000


def address_bucket(address: str, ipv6_prefix: int = 64) -> str:
    """The unit per-address counters count: an IPv4 address (also when IPv4-mapped IPv6), or
    the IPv6 network of ``ipv6_prefix`` bits around it. Text that is no address stays as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))


@dataclass(frozen=True)
class Limit:
    """One fixed-window counter and how many a minute it allows; ``kind`` names it (a metric
    label and what :meth:`FailedAttempts.blocked` reports)."""

    kind: str
    key: str
    limit: int


@dataclass(frozen=True)
class AttemptLimits:
    """The per-minute limits, as configured."""

    per_token: int
    per_address: int
    login_per_account_address: int = 10
    login_per_account: int = 100
    logins_per_address: int = 30
    login_per_device: int = 10
    ipv6_prefix: int = 64


class FailedAttempts:
    """Fixed-window counters of attempts: token ids, accounts, client addresses."""

    def __init__(self, redis: aioredis.Redis, limits: AttemptLimits) -> None:
        self._redis = redis
        self.limits = limits
        self._local: OrderedDict[str, tuple[float, int]] = OrderedDict()
        #: Verifications under way in this process, per counter key.
        self._pending: Counter[str] = Counter()

    def _bucket(self, address: str) -> str:
        return address_bucket(address, self.limits.ipv6_prefix)

    def for_token(self, public_id: str, address: str | None) -> list[Limit]:
        """Wrong secrets for one token id, and from one address (all token ids)."""
        limits = [Limit("token", redis_keys.failed_token_key(public_id), self.limits.per_token)]
        if address:
            key = redis_keys.failed_address_key(self._bucket(address))
            limits.append(Limit("address", key, self.limits.per_address))
        return limits

    def for_login(self, account: str, address: str | None) -> tuple[list[Limit], Limit | None]:
        """Wrong passwords for one account from one address and from all addresses, and the
        sign-in rate of the address (returned apart: it counts right passwords too)."""
        bucket = self._bucket(address) if address else "-"
        failures = [
            Limit(
                "account_address",
                redis_keys.failed_login_key(account, bucket),
                self.limits.login_per_account_address,
            ),
            Limit("account", redis_keys.failed_login_key(account), self.limits.login_per_account),
        ]
        if not address:
            return failures, None
        rate = Limit(
            "address", redis_keys.login_address_key(bucket), self.limits.logins_per_address
        )
        return failures, rate

    def for_device(self, device: str) -> Limit:
        """Wrong passwords given with one device token (see :mod:`introspector.device_cookies`):
        such sign-ins are counted here instead of per e-mail and per (e-mail, address)."""
        key = redis_keys.failed_device_key(device)
        return Limit("device", key, self.limits.login_per_device)

    async def blocked(self, limits: Sequence[Limit], *, reserved: int = 0) -> str | None:
        """The kind of the first counter over its limit, else ``None``.

        Verifications under way in this process count, except the caller's own ``reserved``.
        """
        # Read what is under way before awaiting Redis: a verification that records its failure
        # and finishes while we wait would otherwise be in neither number.
        pending = [self._pending[limit.key] for limit in limits]
        counts: list[int] = []
        try:
            for limit in limits:
                counts.append(int(await self._redis.get(limit.key) or 0))
        except (RedisError, OSError):
            counts = [self._local_count(limit.key) for limit in limits]
        for limit, count, under_way in zip(limits, counts, pending, strict=True):
            if count + under_way - reserved >= limit.limit:
                return limit.kind
        return None

    @contextlib.asynccontextmanager
    async def gate(self, limits: Sequence[Limit]) -> AsyncIterator[str | None]:
        """Check the limits for one verification: yields what blocks it (the caller must not
        verify) or ``None``. Until the block ends, the verification counts as a possible
        failure; call :meth:`record` inside the block when it was one.
        """
        keys = [limit.key for limit in limits]
        # Reserved before the check awaits Redis, so concurrent callers see each other.
        self._pending.update(keys)
        try:
            yield await self.blocked(limits, reserved=1)
        finally:
            self._pending.subtract(keys)
            for key in keys:
                if self._pending[key] <= 0:
                    del self._pending[key]

    async def record(self, limits: Sequence[Limit]) -> None:
        """Count one attempt (usually a failure) against each of ``limits``."""
        keys = [limit.key for limit in limits]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_SECONDS, nx=True)
                await pipe.execute()
        except (RedisError, OSError):
            for key in keys:
                self._local_incr(key)

    def _local_count(self, key: str) -> int:
        started, count = self._local.get(key, (0.0, 0))
        return count if time.monotonic() - started < WINDOW_SECONDS else 0

    def _local_incr(self, key: str) -> None:
        now = time.monotonic()
        started, count = self._local.pop(key, (now, 0))
        if now - started >= WINDOW_SECONDS:
            started, count = now, 0
        self._local[key] = (started, count + 1)
        while len(self._local) > _LOCAL_MAX_KEYS:
            self._local.popitem(last=False)
