"""The session authenticators, for requests without a bearer token: one of ``passthrough``
(the default), ``upstream`` or ``local`` follows the bearer authenticator in the chain
(``KEYGATE_SESSION_AUTHENTICATOR``)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.errors import SESSION_UNAVAILABLE, GatewayError, auth_unavailable
from gateway.identity import LATER, AuthMethod, Identity, Later, RequestContext
from gateway.request import ProxiedRequest
from keygate_core.headers import SESSION_COOKIE, cookie_name
from keygate_core.internal_secret import InternalSecrets
from keygate_core.redis_keys import session_key
from keygate_core.session_record import open_session, session_record_keys

log = logging.getLogger("keygate.gateway")
_ANONYMOUS = Identity.anonymous()


class PassthroughSessionAuthenticator:
    """Cookies go to the upstream untouched; keygate vouches for nobody."""

    def authenticate_now(
        self, request: ProxiedRequest, ctx: RequestContext
    ) -> Identity | Later | None:
        """Always responsible: the anonymous identity."""
        return _ANONYMOUS

    async def authenticate(self, request: ProxiedRequest, ctx: RequestContext) -> Identity | None:
        """Always responsible: the anonymous identity."""
        return _ANONYMOUS


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

    def authenticate_now(
        self, request: ProxiedRequest, ctx: RequestContext
    ) -> Identity | Later | None:
        """``None`` without a cookie, the cached answer for it, else :data:`LATER`."""
        cookie = request.headers.get("Cookie")
        if not cookie:
            return None
        cached = self._cache.get(hashlib.sha256(cookie.encode()).digest())
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return LATER

    async def authenticate(self, request: ProxiedRequest, ctx: RequestContext) -> Identity | None:
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
            email_verified=body.get("emailVerified") is True,
            external_id=str(body["userId"]),
        )


class LocalSessionAuthenticator:
    """keygate's own login: the ``kg_session`` cookie names a session record in Redis.

    The record is stored under a SHA-256 of the cookie value (see introspector.sessions), so
    neither Redis nor this process ever keeps a usable cookie, and sealed with a MAC keyed by
    the internal secret (:mod:`keygate_core.session_record`): a record that fails it is no
    session, whoever wrote it into Redis, and ``on_forged`` is told.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        secrets: InternalSecrets,
        on_forged: Callable[[], None] = lambda: None,
        *,
        https: bool = False,
    ) -> None:
        self._redis = redis
        self._keys = session_record_keys(secrets)
        self._on_forged = on_forged
        #: ``__Host-kg_session`` when served over HTTPS (``KEYGATE_PUBLIC_HTTPS``).
        self._cookie = cookie_name(SESSION_COOKIE, https)

    def authenticate_now(
        self, request: ProxiedRequest, ctx: RequestContext
    ) -> Identity | Later | None:
        """``None`` without a session cookie; with one, only Redis can tell (:data:`LATER`)."""
        session_id = request.cookies.get(self._cookie)
        return LATER if session_id and len(session_id) <= 256 else None

    async def authenticate(self, request: ProxiedRequest, ctx: RequestContext) -> Identity | None:
        """The session's user; ``None`` without a (live, genuine) session cookie.

        Redis unreachable is :data:`SESSION_UNAVAILABLE`, as for the app's own session check:
        routes that do not need keygate's word pass anonymously, the others answer 503.
        """
        session_id = request.cookies.get(self._cookie)
        if not session_id or len(session_id) > 256:
            return None
        key = session_key(session_id)
        try:
            raw = await self._redis.get(key)
        except (RedisError, OSError, TimeoutError):
            raise auth_unavailable(
                "the session store is unavailable; retry shortly", SESSION_UNAVAILABLE
            ) from None
        if raw is None:
            return None
        record = open_session(self._keys, key, raw)
        user_id = None if record is None else record.get("userId")
        if record is None or not isinstance(user_id, str) or not user_id:
            self._on_forged()
            log.warning("forged session record refused", extra={"request_id": ctx.request_id})
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
