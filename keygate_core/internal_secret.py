"""The internal secret as the services hold it: the current one and, while it rotates, the one
before it (``KEYGATE_INTERNAL_SECRET_PREVIOUS``).

Senders always present the current secret; checkers accept either, so services can be
restarted one by one with the new secret and none refuses another in between. Keys derived from
the secret (CSRF tokens, form nonces, session records) are derived from both, so what was signed
with the previous secret still verifies during the overlap; new signatures use the current one.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field


@dataclass(frozen=True)
class InternalSecrets:
    """The current internal secret and, during a rotation, the previous one (else ``""``)."""

    current: str = field(repr=False)
    previous: str = field(default="", repr=False)

    def accepted(self) -> tuple[bytes, ...]:
        """The secrets a caller may present, current first."""
        previous = (self.previous,) if self.previous and self.previous != self.current else ()
        return tuple(s.encode() for s in (self.current, *previous) if s)

    def derive(self, label: bytes) -> tuple[bytes, ...]:
        """The key for ``label`` from each accepted secret, current first (sign with ``[0]``)."""
        return tuple(hmac.new(s, label, hashlib.sha256).digest() for s in self.accepted())


def presented_matches(presented: str, accepted: tuple[bytes, ...]) -> bool:
    """Whether ``presented`` is one of ``accepted``; every candidate is compared in constant
    time, so the answer's timing says nothing about which one (or how much of it) matched."""
    value = presented.encode()
    found = False
    for candidate in accepted:
        found |= hmac.compare_digest(value, candidate)
    return found
