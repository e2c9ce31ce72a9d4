"""The limiter's leases: tokens this gateway took from a Redis bucket ahead of use.

Pure bookkeeping on the monotonic clock, without I/O; :mod:`gateway.pipeline.limit` says what
a lease is, how big one gets and what the fleet is guaranteed. Per key, :class:`LeaseBook`
holds the last grant Redis made (a lease of tokens, and when the bucket can next hold a whole
token if it is empty) and this gateway's recent demand, which sizes the next lease.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

MINUTE_MS = 60_000
#: How long a lease's tokens may be used, counted from just before the request left for Redis.
LEASE_SECONDS = 1.0


def lease_extra_cap(limit_per_minute: int) -> int:
    """The most tokens a lease holds beyond the hits already waiting for it.

    A tenth of a second's refill, ``limit // 600``: none below 600/min, 16,666 at 10,000,000.
    """
    return limit_per_minute // 600


class LeaseGrant(NamedTuple):
    """What the lease script answered: tokens granted, then the bucket after the grant."""

    granted: int
    remaining: int
    full_ms: int
    retry_ms: int


class RateDecision(NamedTuple):
    """One limiter answer, describing the bucket after this request (immutable; a named
    tuple because one is made per request). Made here, where most are: see
    :class:`gateway.pipeline.limit.RateLimiter`.

    ``remaining`` is whole tokens left (≥ 0); ``reset_after`` is seconds until the bucket is
    full again; ``retry_after`` is whole seconds until the next token when denied (≥ 1), 0 when
    allowed; ``degraded`` means Redis was unavailable and the answer did not come from it.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: int
    degraded: bool = False


def decision(
    allowed: bool, limit: int, remaining: int, full_ms: float, retry_ms: float
) -> RateDecision:
    """The decision for a bucket of ``limit`` left with ``remaining`` tokens, full again in
    ``full_ms``, with its next token in ``retry_ms`` when denied."""
    retry_after = 0 if allowed else max(1, math.ceil(retry_ms / 1000))
    # tuple.__new__ makes the same named tuple without its Python-level __new__ (twice as
    # fast, and one is made per bearer request); every field is given, the default too.
    fields = (allowed, limit, max(0, remaining), full_ms / 1000, retry_after, False)
    return tuple.__new__(RateDecision, fields)


@dataclass(slots=True)
class _KeyState:
    limit: int
    tokens: int = 0  # the lease's unused tokens
    remaining: int = 0  # whole tokens Redis left in the bucket at the grant
    full_ms: float = 0.0  # the bucket's time to full at the grant
    asked_at: float = 0.0  # monotonic seconds just before the grant's request left
    expires_at: float = 0.0
    emptied: bool = False  # the grant left the bucket without a whole token...
    denied_until: float = 0.0  # ...and it has none before this
    window_start: float = 0.0  # demand: hits in this lease lifetime and the one before
    count: int = 0
    previous: int = 0


class LeaseBook:
    """Leases, cached denials and demand per key, for at most ``max_keys`` keys.

    The least recently used key is forgotten first; forgetting a lease only drops its tokens.
    """

    def __init__(self, lease_seconds: float = LEASE_SECONDS, max_keys: int = 100_000) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self._lease_seconds = lease_seconds
        self._max_keys = max_keys
        self._states: OrderedDict[str, _KeyState] = OrderedDict()

    def __len__(self) -> int:
        """How many keys are held right now."""
        return len(self._states)

    def take(
        self, key: str, limit: int, now: float, *, count: bool = True, claim: bool = False
    ) -> RateDecision | None:
        """One token from ``key``'s live lease, else its cached denial, else ``None``.

        An answer from the lease reports the bucket as Redis left it at the grant plus the
        lease's unused tokens, as if they were still in it; its time to full is the grant's,
        less the time since and the unused tokens' refill time. ``count`` adds an answered
        request to the key's demand. A ``claim`` is a request that was waiting when the lease
        was asked for: Redis answered it then, so it may take from an expired lease, and it
        is denied if that grant left the bucket empty, even once the next token is due.
        """
        state = self._states.get(key)
        if state is None or state.limit != limit:
            return None
        elapsed_ms = (now - state.asked_at) * 1000
        if state.tokens > 0 and (claim or now < state.expires_at):
            state.tokens -= 1
            full_ms = max(0.0, state.full_ms - state.tokens * MINUTE_MS / limit - elapsed_ms)
            answer = decision(True, limit, state.remaining + state.tokens, full_ms, 0.0)
        elif now < state.denied_until or (claim and state.emptied):
            retry_ms = max(0.0, state.denied_until - now) * 1000
            answer = decision(False, limit, 0, max(retry_ms, state.full_ms - elapsed_ms), retry_ms)
        else:
            return None
        self._states.move_to_end(key)
        if count:
            self._count(state, now)
        return answer

    def count(self, key: str, limit: int, now: float) -> None:
        """Adds one request for ``key`` to its demand (a request the book did not answer)."""
        self._count(self._state(key, limit), now)

    def want(self, key: str, limit: int, claims: int, now: float) -> int:
        """How many tokens to ask for: the ``claims`` waiting, plus the demand of the last
        lease lifetime beyond them, up to :func:`lease_extra_cap` more; at least 1."""
        state = self._state(key, limit)
        age = (now - state.window_start) / self._lease_seconds
        if age >= 2:
            demand = 0.0
        elif age >= 1:
            demand = state.count * (2 - age)
        else:
            demand = state.count + state.previous * (1 - age)
        extra = min(lease_extra_cap(limit), max(0, math.ceil(demand) - claims))
        return max(1, claims + extra)

    def grant(self, key: str, limit: int, asked_at: float, grant: LeaseGrant) -> None:
        """Keeps what Redis granted as ``key``'s lease, replacing the previous one, and a
        denial until the next whole token when the bucket is left without one.

        ``asked_at`` is before Redis ran the script, so the lease ends at most
        ``lease_seconds`` after its tokens left the bucket and the denial ends no later than
        the bucket's next token.
        """
        state = self._state(key, limit)
        state.tokens = grant.granted
        state.remaining = grant.remaining
        state.full_ms = grant.full_ms
        state.asked_at = asked_at
        state.expires_at = asked_at + self._lease_seconds
        state.emptied = grant.retry_ms > 0
        state.denied_until = asked_at + grant.retry_ms / 1000 if state.emptied else 0.0

    def _state(self, key: str, limit: int) -> _KeyState:
        state = self._states.get(key)
        if state is None or state.limit != limit:
            # A new key, or its limit changed: nothing held for the old limit applies.
            state = self._states[key] = _KeyState(limit)
            if len(self._states) > self._max_keys:
                self._states.popitem(last=False)
        self._states.move_to_end(key)
        return state

    def _count(self, state: _KeyState, now: float) -> None:
        age = now - state.window_start
        if age >= self._lease_seconds:
            state.previous = state.count if age < 2 * self._lease_seconds else 0
            state.count = 0
            state.window_start = now
        state.count += 1
