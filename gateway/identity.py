"""Who is calling: the one typed object that carries a request's identity through the stages,
and the facts about the request itself that every stage may need."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple


class AuthMethod(enum.Enum):
    """How the identity was established; sent upstream as ``X-Keygate-Auth-Method``."""

    TOKEN = "token"
    SESSION = "session"
    ANONYMOUS = "anonymous"

    # Members are singletons compared by identity: hashing them by identity too keeps the same
    # meaning, and spares the Python-level Enum.__hash__ on each request that counts one.
    __hash__ = object.__hash__


@dataclass(frozen=True)
class Identity:
    """The caller as far as keygate can vouch for it.

    Frozen: a later stage that learns more builds a new object (``dataclasses.replace``) rather
    than editing the one an earlier stage decided on.
    """

    user_id: str | None
    email: str | None
    workspace_id: str | None
    token_id: str | None
    token_scope: str | None
    auth_method: AuthMethod
    #: The token's own requests-per-minute override; ``None`` means the gateway default.
    rate_limit: int | None = None
    #: Vouched for by the app's own session check: ``user_id`` is the app's id, not keygate's.
    external: bool = False
    #: The app's session check said it verified ``email`` (``emailVerified: true``).
    email_verified: bool = False
    #: The app's own id for the caller (``X-Keygate-External-Id``): the session check's
    #: ``userId``, or the app account a token's owner is linked to; ``None`` when unknown.
    external_id: str | None = None

    @classmethod
    def anonymous(cls) -> Identity:
        """Nobody keygate can vouch for (the upstream may still know them by cookie):
        every field ``None``, ``auth_method`` ANONYMOUS."""
        return cls(
            user_id=None,
            email=None,
            workspace_id=None,
            token_id=None,
            token_scope=None,
            auth_method=AuthMethod.ANONYMOUS,
        )


class RequestContext(NamedTuple):
    """Facts about the request that every stage may need, computed once per request
    (immutable; a named tuple because one is made per request)."""

    request_id: str
    #: The end client's address (see :func:`gateway.forwarded.client_address`), if known.
    client_address: str | None


class _Later(enum.Enum):
    LATER = "later"


#: What a synchronous stage answers when only I/O can decide (the introspector, Redis, the
#: app's session check): the caller then runs the stage's ``async`` form.
LATER: Final = _Later.LATER
Later = Literal[_Later.LATER]
