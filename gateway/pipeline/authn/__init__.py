"""Authentication: an ordered chain of authenticators; the first responsible one decides.

Each authenticator returns an :class:`Identity` (decided), ``None`` ("not responsible": the
credential it handles is absent, try the next) or raises a :class:`GatewayError` (a credential
was presented and is bad — the chain stops; a bad bearer token never falls through to cookies).

The chain is bearer first (:mod:`.bearer`), then one session authenticator (:mod:`.session`).
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from gateway.identity import Identity, RequestContext
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


class Authenticator(Protocol):
    """One way of establishing who is calling."""

    async def authenticate(self, request: web.Request, ctx: RequestContext) -> Identity | None:
        """An identity, ``None`` when not responsible, or raise a GatewayError."""
        ...


async def authenticate(
    chain: list[Authenticator], request: web.Request, ctx: RequestContext
) -> Identity:
    """Run the chain: the first identity wins; if nobody is responsible, anonymous."""
    for authenticator in chain:
        identity = await authenticator.authenticate(request, ctx)
        if identity is not None:
            return identity
    return Identity.anonymous()


__all__ = [
    "MAX_AUTHORIZATION_LENGTH",
    "Authenticator",
    "BearerAuthenticator",
    "LocalSessionAuthenticator",
    "PassthroughSessionAuthenticator",
    "UpstreamSessionAuthenticator",
    "authenticate",
    "bearer_token",
]
