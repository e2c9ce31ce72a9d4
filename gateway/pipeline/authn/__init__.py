"""Authentication: an ordered chain of authenticators; the first responsible one decides.

Each authenticator returns an :class:`Identity` (decided), ``None`` ("not responsible": the
credential it handles is absent, try the next) or raises a :class:`GatewayError` (a credential
was presented and is bad — the chain stops; a bad bearer token never falls through to cookies).

The chain is bearer first (:mod:`.bearer`), then one session authenticator (:mod:`.session`).
"""

from __future__ import annotations

from typing import Protocol

from gateway.identity import Identity, Later, RequestContext
from gateway.pipeline.authn.bearer import (
    MAX_AUTHORIZATION_LENGTH,
    BearerAuthenticator,
    bearer_token,
)
from gateway.pipeline.authn.session import (
    LocalSessionAuthenticator,
    PassthroughSessionAuthenticator,
    UpstreamSessionAuthenticator,
)
from gateway.request import ProxiedRequest

ANONYMOUS = Identity.anonymous()


class Authenticator(Protocol):
    """One way of establishing who is calling."""

    def authenticate_now(
        self, request: ProxiedRequest, ctx: RequestContext
    ) -> Identity | Later | None:
        """Like :meth:`authenticate`, without I/O: :data:`LATER` when only I/O can decide."""
        ...

    async def authenticate(self, request: ProxiedRequest, ctx: RequestContext) -> Identity | None:
        """An identity, ``None`` when not responsible, or raise a GatewayError."""
        ...


def authenticate_now(
    chain: list[Authenticator], request: ProxiedRequest, ctx: RequestContext
) -> Identity | Later:
    """Run the chain without I/O (a warm token, no credential…); :data:`LATER` as soon as one
    authenticator needs I/O, and then :func:`authenticate` decides."""
    for authenticator in chain:
        identity = authenticator.authenticate_now(request, ctx)
        if identity is not None:
            return identity
    return ANONYMOUS


async def authenticate(
    chain: list[Authenticator], request: ProxiedRequest, ctx: RequestContext
) -> Identity:
    """Run the chain: the first identity wins; if nobody is responsible, anonymous."""
    for authenticator in chain:
        identity = await authenticator.authenticate(request, ctx)
        if identity is not None:
            return identity
    return ANONYMOUS


__all__ = [
    "MAX_AUTHORIZATION_LENGTH",
    "Authenticator",
    "BearerAuthenticator",
    "LocalSessionAuthenticator",
    "PassthroughSessionAuthenticator",
    "UpstreamSessionAuthenticator",
    "authenticate",
    "authenticate_now",
    "bearer_token",
]
