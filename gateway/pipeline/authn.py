"""Authentication: an ordered chain of authenticators; the first responsible one decides.

Each authenticator returns an :class:`Identity` (decided), ``None`` ("not responsible": the
credential it handles is absent, try the next) or raises a :class:`GatewayError` (a credential
was presented and is bad — the chain stops; a bad bearer token never falls through to cookies).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from gateway.errors import (
    SESSION_UNAVAILABLE,
    GatewayError,
    auth_unavailable,
    invalid_request,
    invalid_token,
)
from gateway.identity import AuthMethod, Identity
from gateway.introspection_client import IntrospectionClient
from gateway.token_cache import L1Cache
from keygate_core.headers import SESSION_COOKIE
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.redis_keys import session_key
from keygate_core.single_flight import SingleFlight
from keygate_core.token_format import ParsedToken, TokenFormatError, parse_token

#: Longer Authorization values are refused before any parsing (a token is 65 characters).
MAX_AUTHORIZATION_LENGTH = 1024


@dataclass(frozen=True)
class RequestContext:
    """Facts about the request that every stage may need."""

    request_id: str
    client_address: str | None


class Authenticator(Protocol):
    """One way of establishing who is calling."""

    async def authenticate(self, request: web.Request, ctx: RequestContext) -> Identity | None:
        """An identity, ``None`` when not responsible, or raise a GatewayError."""
        ...


def bearer_token(request: web.Request) -> str | None:
    """The bearer token of the request, ``None`` when there is no bearer credential.

    Raises 400 ``invalid_request`` for a duplicated or over-long Authorization header or a token
    with whitespace inside, and 401 ``invalid_token`` for ``Bearer`` with nothing (or only
    whitespace) after it — usually an unset variable in the client's script. Other schemes
    (Basic, …) are not ours and return ``None``.
    """
    values = request.headers.getall("Authorization", [])
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

    async def authenticate(self, request: web.Request, ctx: RequestContext) -> Identity | None:
        """The token owner's identity; 401 for a malformed or inactive token."""
        token = bearer_token(request)
        if token is None:
            return None
        try:
            parts = parse_token(token)
        except TokenFormatError:
            # Rejected on its shape alone: no cache, no network, no argon2.
            raise invalid_token("malformed") from None
        found, result = self._cache.lookup(parts)
        self._on_lookup(found)
        if found == "wrong_secret":
            # The id is warm here with another secret, which is the only one it will ever have.
            raise invalid_token("wrong_secret")
        if result is None:
            result, epoch, asked_at = await self._introspect_once(token, parts, ctx)
            if not result.active:
                raise invalid_token("invalid")
            self._cache.put(parts, result, epoch, asked_at)
        return Identity(
            user_id=result.user_id,
            email=result.email,
            workspace_id=result.workspace_id,
            token_id=result.token_id,
            token_scope=result.scope,
            auth_method=AuthMethod.TOKEN,
            rate_limit=result.rate_limit,
        )

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


class PassthroughSessionAuthenticator:
    """Cookies go to the upstream untouched; keygate vouches for nobody."""

    async def authenticate(self, request: web.Request, ctx: RequestContext) -> Identity | None:
        """Always responsible: the anonymous identity."""
        return Identity.anonymous()


class UpstreamSessionAuthenticator:
    """Resolves the cookie with the app's own session-check URL, caching answers briefly.

    The cache key is a SHA-256 of the Cookie header — the cookie itself is never stored.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        check_url: str,
        cache_seconds: float,
        max_entries: int = 10_000,
    ) -> None:
        self._session = session
        self._url = check_url
        self._ttl = cache_seconds
        self._max = max_entries
        self._cache: OrderedDict[bytes, tuple[float, Identity | None]] = OrderedDict()

    async def authenticate(self, request: web.Request, ctx: RequestContext) -> Identity | None:
        """The session's identity; ``None`` without a cookie or when the app says 401."""
        cookie = request.headers.get("Cookie")
        if not cookie:
            return None
        key = hashlib.sha256(cookie.encode()).digest()
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        identity = await self._check(cookie, ctx)
        self._cache[key] = (now + self._ttl, identity)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return identity

    async def _check(self, cookie: str, ctx: RequestContext) -> Identity | None:
        try:
            async with self._session.get(
                self._url,
                headers={"Cookie": cookie, "X-Request-Id": ctx.request_id},
                timeout=aiohttp.ClientTimeout(total=5),
                allow_redirects=False,
            ) as response:
                if response.status in (401, 403):
                    return None
                if response.status != 200:
                    raise _session_unavailable()
                body = json.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
            raise _session_unavailable() from None
        if not isinstance(body, dict) or not body.get("userId"):
            return None
        return Identity(
            user_id=str(body["userId"]),
            email=_optional_str(body.get("email")),
            workspace_id=_optional_str(body.get("workspaceId")),
            token_id=None,
            token_scope=None,
            auth_method=AuthMethod.SESSION,
            external=True,
        )


class LocalSessionAuthenticator:
    """keygate's own login: the ``kg_session`` cookie names a session record in Redis.

    The record is stored under a SHA-256 of the cookie value (see introspector.sessions), so
    neither Redis nor this process ever keeps a usable cookie.
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def authenticate(self, request: web.Request, ctx: RequestContext) -> Identity | None:
        """The session's user; ``None`` without a (live) session cookie."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id or len(session_id) > 256:
            return None
        try:
            raw = await self._redis.get(session_key(session_id))
        except (RedisError, OSError, TimeoutError):
            raise auth_unavailable("the session store is unavailable; retry shortly") from None
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            user_id = str(record["userId"])
        except (ValueError, KeyError, TypeError):
            return None
        return Identity(
            user_id=user_id,
            email=_optional_str(record.get("email")),
            workspace_id=None,
            token_id=None,
            token_scope=None,
            auth_method=AuthMethod.SESSION,
        )


def _session_unavailable() -> GatewayError:
    return auth_unavailable(
        "the session service is unavailable; retry shortly", SESSION_UNAVAILABLE
    )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


async def authenticate(
    chain: list[Authenticator], request: web.Request, ctx: RequestContext
) -> Identity:
    """Run the chain: the first identity wins; if nobody is responsible, anonymous."""
    for authenticator in chain:
        identity = await authenticator.authenticate(request, ctx)
        if identity is not None:
            return identity
    return Identity.anonymous()
