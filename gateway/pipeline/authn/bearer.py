"""The bearer authenticator: ``Authorization: Bearer kg_…``, from the L1 cache or the introspector.

This module decides what *authenticates*: exactly one ``Authorization`` header, the ``Bearer``
scheme, one well-formed token (:func:`bearer_token`). Whether the header is then forwarded is the
mutate stage's business: it removes more than this module reads (see
:func:`gateway.pipeline.mutate.is_bearer`), so a value that is not a credential here can still
never leak a token upstream.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

from gateway.errors import invalid_request, invalid_token
from gateway.identity import LATER, AuthMethod, Identity, Later, RequestContext
from gateway.introspection_client import IntrospectionClient
from gateway.request import ProxiedRequest, authorization_values
from gateway.token_cache import L1Cache, Lookup
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.single_flight import SingleFlight
from keygate_core.token_format import (
    TOKEN_LENGTH,
    TOKEN_PATTERN,
    ParsedToken,
    TokenFormatError,
    parse_token,
    token_parts,
)

#: Longer Authorization values are refused before any parsing (a token is 65 characters).
MAX_AUTHORIZATION_LENGTH = 1024
#: The Authorization value almost every client sends: ``Bearer`` (any case), one space, a
#: well-shaped token, nothing more. Group 1 is the token, then its parts (TOKEN_PATTERN's).
_PLAIN_BEARER = re.compile(f"[Bb][Ee][Aa][Rr][Ee][Rr] ({TOKEN_PATTERN})")
#: The start of such a value, in every spelling :data:`_PLAIN_BEARER` takes, and its length.
_SCHEMES = frozenset(
    "".join(letters) + " " for letters in itertools.product(*zip("bearer", "BEARER", strict=True))
)
_PLAIN_LENGTH = len("Bearer ") + TOKEN_LENGTH


def bearer_token(request: ProxiedRequest) -> str | None:
    """The bearer token of the request, ``None`` when there is no bearer credential.

    Strict: the scheme is the text before the first space, compared case-insensitively.
    Raises 400 ``invalid_request`` for a duplicated or over-long Authorization header or a token
    with whitespace inside, and 401 ``invalid_token`` for ``Bearer`` with nothing (or only
    whitespace) after it — usually an unset variable in the client's script. Other schemes
    (Basic, …) are not ours and return ``None``.
    """
    values = authorization_values(request)
    if not values:
        return None
    if len(values) > 1:
        raise invalid_request("send exactly one Authorization header")
    value = values[0]
    if len(value) > MAX_AUTHORIZATION_LENGTH:
        raise invalid_request("the Authorization header is too long")
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = credentials.strip()
    if not token:
        raise invalid_token("malformed")
    if len(token.split()) > 1:  # str.split() splits at exactly what str.isspace() calls space
        raise invalid_request("the bearer token contains whitespace")
    return token


def token_step_by_step(request: ProxiedRequest) -> tuple[str, ParsedToken] | None:
    """The bearer token and its parts (:func:`bearer_token`, then ``parse_token``); the
    authenticator reads the common ``Bearer <token>`` in one step, to the same outcome."""
    token = bearer_token(request)
    if token is None:
        return None
    try:
        return token, parse_token(token)
    except TokenFormatError:
        # Rejected on its shape alone: no cache, no network, no argon2.
        raise invalid_token("malformed") from None


class BearerAuthenticator:
    """``Authorization: Bearer kg_…``: L1 cache, then the introspector."""

    def __init__(
        self,
        client: IntrospectionClient,
        cache: L1Cache,
        on_lookup: Callable[[str], None] = lambda result: None,
    ) -> None:
        self._client = client
        self._cache = cache
        self._on_lookup = on_lookup
        # Concurrent requests with the same cold token share one introspection call.
        self._inflight: SingleFlight[tuple[IntrospectionResult, int, float]] = SingleFlight()
        # The identity of each cached result, made once: by id(), each with the (immutable)
        # result it was made from, which keeps that id from being reused while it is here.
        self._identities: dict[int, tuple[IntrospectionResult, Identity]] = {}

    def authenticate_now(
        self, request: ProxiedRequest, ctx: RequestContext
    ) -> Identity | Later | None:
        """The owner's identity when the token is warm in the L1 cache, :data:`LATER` when only
        the introspector can tell; refusals as in :meth:`authenticate`."""
        values = authorization_values(request)
        if len(values) == 1:
            value = values[0]
            if len(value) == _PLAIN_LENGTH and value[:7] in _SCHEMES:
                # ``Bearer <token>``: a warm token is known by its whole text, unparsed (a
                # cached MAC matches only a token that was read and verified in full).
                result = self._cache.exact(value[7:])
                if result is not None:
                    return self._decided("hit", result)
        token = self._token(request)
        if token is None:
            return None
        found, result = self._cache.lookup(token[1], token[0])
        if found == "miss":
            return LATER  # counted by authenticate(), which looks again
        return self._decided(found, result)

    async def authenticate(self, request: ProxiedRequest, ctx: RequestContext) -> Identity | None:
        """The token owner's identity; 401 for a malformed or inactive token."""
        token = self._token(request)
        if token is None:
            return None
        text, parts = token
        found, result = self._cache.lookup(parts, text)
        if found == "miss":
            self._on_lookup(found)
            result, epoch, asked_at = await self._introspect_once(text, parts, ctx)
            if not result.active:
                raise invalid_token("invalid")
            self._cache.put(parts, result, epoch, asked_at)
            return _identity(result)
        return self._decided(found, result)

    @staticmethod
    def _token(request: ProxiedRequest) -> tuple[str, ParsedToken] | None:
        values = authorization_values(request)
        if len(values) == 1:
            plain = _PLAIN_BEARER.fullmatch(values[0])
            if plain is not None:  # what bearer_token and parse_token would find, at once
                token = plain.group(1)
                try:
                    return token, token_parts(token, *plain.group(2, 3, 4))
                except TokenFormatError:
                    raise invalid_token("malformed") from None
        return token_step_by_step(request)

    def _decided(self, found: Lookup, result: IntrospectionResult | None) -> Identity:
        self._on_lookup(found)
        if result is None:
            # The id is warm here with another secret, which is the only one it will ever have.
            raise invalid_token("wrong_secret")
        known = self._identities.get(id(result))
        if known is not None and known[0] is result:
            return known[1]
        if len(self._identities) >= _IDENTITIES:
            self._identities.clear()
        identity = _identity(result)
        self._identities[id(result)] = (result, identity)
        return identity

    async def _introspect_once(
        self, token: str, parts: ParsedToken, ctx: RequestContext
    ) -> tuple[IntrospectionResult, int, float]:
        """The introspector's answer with the cache epoch and clock from when it was asked.

        Shared with concurrent requests for the same token: they all get the first ask's epoch
        and time, since that is how old the answer is.
        """

        async def ask() -> tuple[IntrospectionResult, int, float]:
            epoch, asked_at = self._cache.epoch, self._cache.now()
            result = await self._client.introspect(
                token, client_address=ctx.client_address, request_id=ctx.request_id
            )
            return result, epoch, asked_at

        return await self._inflight.run(self._cache.fingerprint(parts), ask)


#: Identities remembered by :meth:`BearerAuthenticator._decided` before the memo starts over.
_IDENTITIES = 4096


def _identity(result: IntrospectionResult) -> Identity:
    return Identity(
        user_id=result.user_id,
        email=result.email,
        workspace_id=result.workspace_id,
        token_id=result.token_id,
        token_scope=result.scope,
        auth_method=AuthMethod.TOKEN,
        rate_limit=result.rate_limit,
        external_id=result.external_id,
    )
