"""Who is calling the introspector, as vouched for by the gateway.

The introspector is internal: every data-bearing request must carry the shared secret in
:data:`keygate_core.headers.INTERNAL_SECRET`. Only then are the gateway's identity headers
believed. The gateway strips these headers from whatever clients send, so a client can never
speak them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote
from uuid import UUID

from aiohttp import web

from introspector import tokens, users
from introspector.appkeys import SETTINGS
from introspector.db import Connection
from introspector.errors import NotFound, Unauthenticated
from introspector.models import Actor, ActorKind, TokenRecord, TokenStatus, User
from keygate_core import headers
from keygate_core.logs import request_id_var
from keygate_core.scopes import Scope


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
    method = request.headers.get(headers.AUTH_METHOD, "")
    if method == "session" and request.headers.get(headers.IDENTITY_SOURCE) == "upstream":
        return await _app_session_caller(request, conn)
    user_id = _uuid_header(request, headers.USER_ID)
    if user_id is None or method not in ("session", "token"):
        raise Unauthenticated("sign in, or send an API token as `Authorization: Bearer <token>`")
    try:
        user = await users.get_user(conn, user_id)
    except NotFound:
        raise Unauthenticated("the signed-in user no longer exists") from None
    _refuse_deactivated(user)
    token: TokenRecord | None = None
    if method == "token":
        token_id = _uuid_header(request, headers.TOKEN_ID)
        if token_id is None:
            raise Unauthenticated(f"{headers.TOKEN_ID} is required for token callers")
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
    external_id = request.headers.get(headers.USER_ID, "").strip()
    if not external_id or len(external_id) > 255:
        raise Unauthenticated(f"{headers.USER_ID} is required")
    email = unquote(request.headers.get(headers.EMAIL, "")).strip() or None
    source_ip = client_address(request)
    request_id = request_id_var.get()
    user = await users.resolve_external(
        conn,
        Actor(kind=ActorKind.SESSION, source_ip=source_ip, request_id=request_id),
        external_id=external_id,
        email=email,
        email_verified=request.headers.get(headers.EMAIL_VERIFIED) == "true",
        link_by_email=request.app[SETTINGS].link_users_by_email,
    )
    _refuse_deactivated(user)
    actor = Actor(
        kind=ActorKind.SESSION, user_id=user.id, source_ip=source_ip, request_id=request_id
    )
    return Caller(user=user, auth_method="session", token=None, actor=actor)


def _refuse_deactivated(user: User) -> None:
    """A deactivated person is nobody to the management API, however they authenticated: their
    sessions and tokens are ended anyway, this also covers the moments before that is done and
    the app's own sessions (upstream mode), which keygate cannot end."""
    if user.deactivated_at is not None:
        raise Unauthenticated("this account is deactivated")


def client_address(request: web.Request) -> str | None:
    """The end client's address as the gateway reports it, or ``None``.

    Never the TCP peer: that is the gateway, and keying per-client limits on it would let one
    client's failures throttle everybody behind the same gateway.
    """
    return headers.reported_client_address(request.headers)
