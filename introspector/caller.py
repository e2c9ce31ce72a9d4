"""Who is calling the introspector, as vouched for by the gateway.

The introspector is internal: every data-bearing request must carry the shared secret in
:data:`INTERNAL_SECRET_HEADER`. Only then are the gateway's identity headers believed. The gateway
strips these headers from whatever clients send, so a client can never speak them directly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote
from uuid import UUID

from aiohttp import web

from introspector import tokens, users
from introspector.db import Connection
from introspector.errors import NotFound, Unauthenticated
from introspector.models import Actor, ActorKind, Scope, TokenRecord, TokenStatus, User
from keygate_core.logs import request_id_var

INTERNAL_SECRET_HEADER = "X-Keygate-Internal-Secret"
USER_ID_HEADER = "X-Keygate-User-Id"
AUTH_METHOD_HEADER = "X-Keygate-Auth-Method"
TOKEN_ID_HEADER = "X-Keygate-Token-Id"
CLIENT_ADDRESS_HEADER = "X-Keygate-Client-Address"
EMAIL_HEADER = "X-Keygate-User-Email"
#: ``upstream`` when the person signed in to the protected app, whose session check vouched for
#: them: ``X-Keygate-User-Id`` is then the app's user id, not keygate's.
IDENTITY_SOURCE_HEADER = "X-Keygate-Identity-Source"


@dataclass(frozen=True)
class Caller:
    """An authenticated person, how they authenticated, and (for tokens) which token."""

    user: User
    auth_method: str  # "session" or "token"
    token: TokenRecord | None
    actor: Actor

    @property
    def acts_as_org_admin(self) -> bool:
        """An organisation admin signed in, or using an ORGANIZATION token (not a narrower one)."""
        if not self.user.is_admin:
            return False
        return self.token is None or self.token.scope is Scope.ORGANIZATION


def _uuid_header(request: web.Request, name: str) -> UUID | None:
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise Unauthenticated(f"{name} is not a valid id") from None


async def load_caller(request: web.Request, conn: Connection) -> Caller:
    """The caller of a management request, or :class:`Unauthenticated`."""
    method = request.headers.get(AUTH_METHOD_HEADER, "")
    if method == "session" and request.headers.get(IDENTITY_SOURCE_HEADER) == "upstream":
        return await _app_session_caller(request, conn)
    user_id = _uuid_header(request, USER_ID_HEADER)
    if user_id is None or method not in ("session", "token"):
        raise Unauthenticated("sign in, or send an API token as `Authorization: Bearer <token>`")
    try:
        user = await users.get_user(conn, user_id)
    except NotFound:
        raise Unauthenticated("the signed-in user no longer exists") from None
    token: TokenRecord | None = None
    if method == "token":
        token_id = _uuid_header(request, TOKEN_ID_HEADER)
        if token_id is None:
            raise Unauthenticated(f"{TOKEN_ID_HEADER} is required for token callers")
        try:
            token = await tokens.get_token(conn, token_id, visible_to=user.id)
        except NotFound:
            raise Unauthenticated("the API token is not valid") from None
        if token.status(datetime.now(UTC)) is not TokenStatus.ACTIVE:
            raise Unauthenticated("the API token is not valid")
    actor = Actor(
        kind=ActorKind.TOKEN if token else ActorKind.SESSION,
        user_id=user.id,
        token_id=token.id if token else None,
        source_ip=client_address(request),
        request_id=request_id_var.get(),
    )
    return Caller(user=user, auth_method=method, token=token, actor=actor)


async def _app_session_caller(request: web.Request, conn: Connection) -> Caller:
    """A person signed in to the protected app: known by the app's id, made on first sight."""
    external_id = request.headers.get(USER_ID_HEADER, "").strip()
    if not external_id or len(external_id) > 255:
        raise Unauthenticated(f"{USER_ID_HEADER} is required")
    email = unquote(request.headers.get(EMAIL_HEADER, "")).strip() or None
    source_ip = client_address(request)
    request_id = request_id_var.get()
    user = await users.resolve_external(
        conn,
        Actor(kind=ActorKind.SESSION, source_ip=source_ip, request_id=request_id),
        external_id=external_id,
        email=email,
    )
    actor = Actor(
        kind=ActorKind.SESSION, user_id=user.id, source_ip=source_ip, request_id=request_id
    )
    return Caller(user=user, auth_method="session", token=None, actor=actor)


def client_address(request: web.Request) -> str | None:
    """The end client's address as the gateway reports it, or ``None``.

    Never the TCP peer: that is the gateway, and keying per-client limits on it would let one
    client's failures throttle everybody behind the same gateway.
    """
    reported = request.headers.get(CLIENT_ADDRESS_HEADER)
    if reported:
        try:
            return str(ipaddress.ip_address(reported.strip()))
        except ValueError:
            return None
    return None
