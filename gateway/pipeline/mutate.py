"""Mutate: what the upstream is told about a request, and the bearer token it is not told.

For an upstream the stage removes the bearer token (unless the operator opted in) and, for the
app and URL upstreams, keygate's own cookies. It writes ``X-Forwarded-*`` and ``X-Request-Id``,
and adds the identity headers: under the configured names for the app, under the fixed names
plus the internal secret for keygate's own services. For
``/_keygate/auth`` it puts the identity headers on the answer instead.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import MutableMapping
from dataclasses import dataclass
from urllib.parse import quote

from multidict import CIMultiDict

from gateway.forwarded import Network, forwarded_headers
from gateway.identity import Identity, RequestContext
from gateway.pipeline.authz import ADMIN_UI, INTROSPECTOR
from gateway.pipeline.cookies import drop_keygate_cookies
from gateway.pipeline.strip import HOP_BY_HOP, canonical_name, is_field_name
from gateway.request import ProxiedRequest
from gateway.settings import GatewaySettings
from keygate_core import headers as wire

# Visible ASCII except "%" is left alone; "%" itself is encoded so the result decodes
# unambiguously. quote() adds letters, digits and "_.-~" on its own.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")

# Names an identity header must not take: the gateway strips identity names from every request,
# so mapping one onto these would silently delete the client's own header of that name.
_RESERVED = HOP_BY_HOP | {
    "authorization",
    "content-length",
    "content-type",
    "cookie",
    "forwarded",
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
}


@dataclass(frozen=True)
class IdentityHeaderNames:
    """What each identity header is called for the upstream (configurable per deployment).

    Checked once, when built: every name must be a valid field name, none may be a header with
    its own meaning (``Authorization``, ``Cookie``, hop-by-hop, ``X-Forwarded-*``…), and no two
    may be the same header case-insensitively or with ``_`` read as ``-``. A bad set raises
    :class:`ValueError` naming the field.
    """

    user_id: str = wire.USER_ID
    email: str = wire.EMAIL
    workspace_id: str = wire.WORKSPACE_ID
    token_id: str = wire.TOKEN_ID
    token_scope: str = wire.TOKEN_SCOPE
    auth_method: str = wire.AUTH_METHOD
    external_id: str = wire.EXTERNAL_ID

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for field in dataclasses.fields(self):
            name = getattr(self, field.name)
            if not isinstance(name, str) or not is_field_name(name):
                raise ValueError(f"{field.name}: {name!r} is not a valid header name")
            key = canonical_name(name)
            if key in _RESERVED:
                raise ValueError(f"{field.name}: {name!r} already means something in HTTP")
            if key in seen:
                raise ValueError(f"{field.name}: {name!r} is the same header as {seen[key]}")
            seen[key] = field.name
        # Asked on every request; dataclasses.fields() is too slow for that.
        names = tuple(getattr(self, f.name) for f in dataclasses.fields(self))
        object.__setattr__(self, "_all", names)

    def all(self) -> tuple[str, ...]:
        """Every configured name, in field order — what :func:`strip_inbound` must remove."""
        names: tuple[str, ...] = self.__dict__["_all"]
        return names


#: The names keygate's own services read; independent of the names shown to the upstream app.
SERVICE_IDENTITY = IdentityHeaderNames()
#: Upstreams that are keygate's own services (route rules name them; see gateway.pipeline.authz).
KEYGATE_SERVICES = frozenset({INTROSPECTOR, ADMIN_UI})


@functools.lru_cache(maxsize=8192)
def header_value(value: str) -> str:
    """``value`` as it may appear in a header: unchanged when it is visible ASCII without
    ``%``; otherwise every other character is percent-encoded from its UTF-8 bytes
    (RFC 3986 style: ``é`` → ``%C3%A9``, CR → ``%0D``, space → ``%20``, ``%`` → ``%25``).

    So a value can never carry CR/LF (header injection), NUL, other control characters or
    bytes an upstream might decode differently, and ``urllib.parse.unquote`` restores the
    original exactly. Lone surrogates are encoded as their raw code units rather than raising.
    Answers are remembered: the same ids and e-mails come back request after request.
    """
    return quote(value, safe=_SAFE, errors="surrogatepass")


def identity_headers(identity: Identity, names: IdentityHeaderNames) -> list[tuple[str, str]]:
    """The headers that tell the upstream who is calling, in :class:`IdentityHeaderNames` order.

    A ``None`` or empty fact is omitted rather than sent blank; the auth method is always sent.
    Every value goes through :func:`header_value`.
    """
    return [(name, header_value(value)) for name, value in _facts(identity, names) if value]


def set_identity_headers(
    headers: MutableMapping[str, str], identity: Identity, names: IdentityHeaderNames
) -> None:
    """Set :func:`identity_headers` on ``headers``, replacing any value already there."""
    # Straight from the facts: no list in between, on every request.
    for name, value in _facts(identity, names):
        if value:
            headers[name] = header_value(value)


def _facts(identity: Identity, names: IdentityHeaderNames) -> tuple[tuple[str, str | None], ...]:
    return (
        (names.user_id, identity.user_id),
        (names.email, identity.email),
        (names.workspace_id, identity.workspace_id),
        (names.token_id, identity.token_id),
        (names.token_scope, identity.token_scope),
        (names.auth_method, identity.auth_method.value),
        (names.external_id, identity.external_id),
    )


def service_headers(
    headers: MutableMapping[str, str],
    secret: str,
    ctx: RequestContext,
    identity: Identity,
    default_rate_limit: int,
) -> None:
    """Set what only keygate's own services are told: the internal secret that proves the
    request came through the gateway, the client's address (when known), a token caller's
    per-minute limit (for whoami) and, for a person the app's session check vouched for,
    ``X-Keygate-Identity-Source: upstream``."""
    headers[wire.INTERNAL_SECRET] = secret
    if ctx.client_address:
        headers[wire.CLIENT_ADDRESS] = ctx.client_address
    if identity.token_id is not None:
        headers[wire.RATE_LIMIT] = str(identity.rate_limit or default_rate_limit)
    if identity.external:
        headers[wire.IDENTITY_SOURCE] = "upstream"
        if identity.email_verified:
            headers[wire.EMAIL_VERIFIED] = "true"


def forwards_bearer(opted_in: bool, upstream: str) -> bool:
    """Whether the client's bearer token goes on to ``upstream``: only when the operator opted
    in (``KEYGATE_FORWARD_BEARER``), and never to keygate's own services, which learn who is
    calling from the identity headers next to the internal secret."""
    return opted_in and upstream not in KEYGATE_SERVICES


def is_bearer(value: str) -> bool:
    """Whether an ``Authorization`` value uses the Bearer scheme (any case, any padding).

    Deliberately loose — anything starting with ``bearer`` counts — because the cost of a
    false positive is one header the upstream did not need, and of a false negative a leaked
    token. Stricter reading, to *authenticate*, is the bearer authenticator's
    (:func:`gateway.pipeline.authn.bearer_token`); this one only decides what is removed.
    """
    return value.lstrip().lower().startswith("bearer")


def drop_bearer(headers: CIMultiDict[str], *, forward_bearer: bool) -> CIMultiDict[str]:
    """The headers to forward, with every Bearer ``Authorization`` value removed.

    The token authenticated the caller to keygate; the upstream learns who that is from the
    identity headers and never needs the secret itself. With ``forward_bearer`` (the operator
    opted in) the headers are returned unchanged. Other schemes (``Basic``…) belong to the
    upstream and are always kept. Returns a new multidict; the input is not modified.
    """
    if forward_bearer:
        return CIMultiDict(headers)
    return CIMultiDict(
        (name, value)
        for name, value in headers.items()
        if not (canonical_name(name) == "authorization" and is_bearer(value))
    )


@dataclass(frozen=True)
class Mutator:
    """The mutate stage as configured for one gateway: built once, asked once per request."""

    #: The identity header names the app (and ``/_keygate/auth``'s caller) sees.
    names: IdentityHeaderNames
    internal_secret: str
    #: The operator's ``KEYGATE_FORWARD_BEARER``; see :func:`forwards_bearer`.
    forward_bearer: bool
    trusted_proxies: tuple[Network, ...]
    #: ``KEYGATE_RATE_LIMIT_PER_MINUTE``: the limit of a token without its own.
    default_rate_limit: int

    @classmethod
    def configured(cls, names: IdentityHeaderNames, settings: GatewaySettings) -> Mutator:
        """The mutate stage for a gateway with ``settings`` showing the app ``names``."""
        return cls(
            names,
            settings.internal_secret,
            settings.forward_bearer,
            settings.trusted_proxies,
            settings.rate_limit_per_minute,
        )

    def for_upstream(
        self,
        request: ProxiedRequest,
        headers: CIMultiDict[str],
        upstream: str,
        identity: Identity,
        ctx: RequestContext,
    ) -> CIMultiDict[str]:
        """The headers to send to ``upstream`` (a route rule's), from the stripped ``headers``
        (which this changes: strip made them for this request).

        Without the bearer token (see :func:`forwards_bearer`) and ``Host``; with
        ``X-Forwarded-*`` (see :func:`gateway.forwarded.forwarded_headers`), ``X-Request-Id``
        and the identity headers; keygate's own services also get :func:`service_headers`,
        and only they get keygate's cookies (see :func:`drop_keygate_cookies`).
        """
        # Every spelling strip kept ("authorization" has no "-" for a "_" to stand in for) is
        # found by the case-insensitive lookup; without one there is nothing to drop.
        if "Authorization" in headers and not forwards_bearer(self.forward_bearer, upstream):
            if all(is_bearer(value) for value in headers.getall("Authorization")):
                headers.popall("Authorization")  # the usual case: one value, a bearer token
            else:
                headers = drop_bearer(headers, forward_bearer=False)
        headers.popall("Host", None)
        for name, value in forwarded_headers(
            request.headers,
            peer_ip=request.remote or "",
            scheme=request.scheme,
            host=request.host,
            trusted_proxies=self.trusted_proxies,
        ):
            headers[name] = value
        headers[wire.REQUEST_ID] = ctx.request_id
        if upstream in KEYGATE_SERVICES:
            service_headers(headers, self.internal_secret, ctx, identity, self.default_rate_limit)
            set_identity_headers(headers, identity, SERVICE_IDENTITY)
        else:
            if "Cookie" in headers:
                drop_keygate_cookies(headers)
            set_identity_headers(headers, identity, self.names)
        return headers

    def for_answer(self, headers: MutableMapping[str, str], identity: Identity) -> None:
        """Put the identity headers on a forward-auth answer, under the configured names."""
        set_identity_headers(headers, identity, self.names)
