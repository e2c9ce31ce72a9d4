"""One-time nonces for the create form, so a reload or "back" never shows a new token twice.

A nonce is ``<issued-at>.<random>.<mac>``: signed, so the UI only accepts nonces it issued, and
dated, so a nonce stops being acceptable once the store would have forgotten it. Redeemed nonces
are remembered per process in a bounded, insertion-ordered map (oldest evicted first).

The guarantee is per process: behind a load balancer with several admin UI processes a replayed
form could reach a process that has not seen it. The API would then mint a second token (never
reveal the first one again), which is the safe failure.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from keygate_core.internal_secret import InternalSecrets

_LABEL = b"keygate/admin-ui/nonce/v1"


class Redemption(enum.Enum):
    """What redeeming a nonce found."""

    FRESH = "fresh"  # first use: go ahead
    REUSED = "reused"  # already redeemed: the form was submitted before
    INVALID = "invalid"  # not ours, malformed or too old


class NonceStore:
    """Issues signed nonces and remembers which ones were redeemed, for ``ttl_seconds``."""

    def __init__(
        self,
        secret: str,
        *,
        previous: str = "",
        ttl_seconds: float = 3600,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Nonces signed with the previous secret (forms rendered before a rotation) still redeem.
        self._keys = InternalSecrets(secret, previous).derive(_LABEL)
        self._ttl = ttl_seconds
        self._capacity = capacity
        self._clock = clock
        self._redeemed: OrderedDict[str, float] = OrderedDict()

    def issue(self) -> str:
        """A new nonce for one rendering of the create form."""
        body = f"{int(self._clock())}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._mac(body, self._keys[0])}"

    def redeem(self, nonce: str) -> Redemption:
        """Mark ``nonce`` used; say whether this was its first use.

        Check-and-mark happens without awaiting, so two concurrent submissions of one form
        cannot both see :attr:`Redemption.FRESH`.
        """
        now = self._clock()
        self._forget_expired(now)
        body, _, mac = nonce.rpartition(".")
        issued_text, _, _ = body.partition(".")
        if not body or not any(
            hmac.compare_digest(self._mac(body, key).encode(), mac.encode()) for key in self._keys
        ):
            return Redemption.INVALID
        try:
            issued = int(issued_text)
        except ValueError:
            return Redemption.INVALID
        if not issued - 60 <= now <= issued + self._ttl:
            return Redemption.INVALID
        if nonce in self._redeemed:
            return Redemption.REUSED
        self._redeemed[nonce] = now + self._ttl
        while len(self._redeemed) > self._capacity:
            self._redeemed.popitem(last=False)
        return Redemption.FRESH

    def __len__(self) -> int:
        return len(self._redeemed)

    def _forget_expired(self, now: float) -> None:
        while self._redeemed:
            oldest, expires = next(iter(self._redeemed.items()))
            if expires > now:
                break
            del self._redeemed[oldest]

    @staticmethod
    def _mac(body: str, key: bytes) -> str:
        return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]
