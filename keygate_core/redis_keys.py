"""Every Redis key and channel keygate's services share, built in one place.

Keys are hash-tagged (``{…}``) on the token or session they belong to, so every multi-key
operation on one token stays within one Redis Cluster slot. The rules on Redis Cluster: a script
takes one key, there are no transactions, and a command with several keys names one subject's
keys only (``tests/unit/core/test_redis_slots.py`` checks the source); pipelines without a
transaction may mix subjects, since redis-py's cluster client splits them per node. No key ever
contains a secret: sessions are keyed by a SHA-256 of the cookie, tokens by their public id.
"""

from __future__ import annotations

import hashlib

#: The introspector publishes a revoked token's public id here; every gateway listens. Plain
#: pub/sub: on Redis Cluster every node hears every message (docs/reliability.md says why).
REVOCATION_CHANNEL = "keygate:revocations"


def token_key(public_id: str) -> str:
    """The introspector's cached verdict for one token."""
    return f"kg:tok:{{{public_id}}}"


def rate_limit_key(subject: str) -> str:
    """One token bucket (the subject is a token id)."""
    return f"kg:rl:{{{subject}}}"


def failed_token_key(public_id: str) -> str:
    """Failed verifications of one token's public id."""
    return f"kg:fail:t:{{{public_id}}}"


def failed_address_key(address: str) -> str:
    """Failed token verifications from one client address (an IPv6 /64 counts as one)."""
    return f"kg:fail:a:{{{address}}}"


def failed_login_key(account: str, address: str | None = None) -> str:
    """Wrong passwords for one account (a digest of its e-mail), from one address or from all."""
    return f"kg:fail:l:{{{account}}}" + ("" if address is None else f":{address}")


def failed_device_key(device: str) -> str:
    """Wrong passwords given with one device token (keyed by a digest of its nonce)."""
    return f"kg:fail:d:{{{device}}}"


def login_address_key(address: str) -> str:
    """Sign-in attempts, right or wrong, from one client address."""
    return f"kg:login:a:{{{address}}}"


def session_key(session_id: str) -> str:
    """A login session's record, keyed by a SHA-256 of the cookie (never the cookie itself)."""
    return f"kg:sess:{{{hashlib.sha256(session_id.encode()).hexdigest()}}}"


def user_sessions_key(user_id: str) -> str:
    """The set of one person's session keys (:func:`session_key` values), so that deactivating
    them or setting their password can end every session they have."""
    return f"kg:usess:{{{user_id}}}"


def usage_key(token_id: str, minute: int) -> str:
    """One token's request count in one epoch minute (written by gateways, read for charts)."""
    return f"kg:use:{{{token_id}}}:{minute}"


def token_create_key(subject: str) -> str:
    """Tokens created in the current minute by one person (``u:<id>``) or address (``a:<net>``)."""
    return f"kg:mint:{{{subject}}}"
