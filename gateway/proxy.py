"""Runs a request through the stages: strip → authenticate → authorize → limit → mutate → forward.

Each stage lives in :mod:`gateway.pipeline`; this module only sequences them, and answers the
forward-auth question (``/_keygate/auth``) with the same stages minus the forwarding.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from gateway.errors import (
    SESSION_UNAVAILABLE,
    GatewayError,
    bad_path,
    duplicate_header,
    rate_limited,
)
from gateway.forwarded import (
    client_address,
    forwarded_headers,
    is_trusted,
    parse_address,
)
from gateway.identity import AuthMethod, Identity, RequestContext
from gateway.metrics import GatewayMetrics
from gateway.pipeline.authn import Authenticator, authenticate
from gateway.pipeline.authz import (
    ADMIN_UI,
    INTROSPECTOR,
    AuthPolicy,
    RouteRule,
    RouteTable,
    authorize,
)
from gateway.pipeline.authz import workspace_of as bound_workspace
from gateway.pipeline.forward import Forwarder
from gateway.pipeline.limit import RateDecision, RateLimiter
from gateway.pipeline.mutate import IdentityHeaderNames, drop_bearer, identity_headers
from gateway.pipeline.strip import strip_inbound
from gateway.settings import GatewaySettings
from gateway.usage import UsageRecorder
from keygate_core import headers as wire

#: Fixed names the introspector reads; independent of the names shown to the upstream app.
INTROSPECTOR_IDENTITY = IdentityHeaderNames()
KEYGATE_SERVICES = (INTROSPECTOR, ADMIN_UI)
UNTRUSTED_FORWARDING = (
    "Forwarded",
    "X-Real-IP",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    # Path overrides some frameworks and proxies honour: the app must route on the path the
    # gateway decided on, not on one the client claims.
    "X-Forwarded-Uri",
    "X-Original-URI",
    "X-Original-URL",
    "X-Rewrite-URL",
)
#: Written by the gateway itself; no spelling of them is taken from the client.
GATEWAY_WRITTEN = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", wire.REQUEST_ID)

# Encoded slashes, backslashes, NULs and dot segments mean different paths to different
# decoders; a policy decided on one reading must not be applied to another. So do a literal
# backslash (a slash to Windows-style servers) and a dot segment with ;parameters (a dot
# segment to Java servlet containers: /public/..;/private).
_AMBIGUOUS = re.compile(r"%2f|%5c|%00|%2e|\\|(^|/)\.\.?(/|;|$)|//", re.IGNORECASE)
# Still percent-encoded after one decoding: an application that decodes again reads another
# path (/public/%252e%252e/private is /public/../private to it).
_ENCODED_TWICE = re.compile(r"%[0-9a-f]{2}", re.IGNORECASE)


def is_ambiguous(raw_path: str) -> bool:
    """Whether ``raw_path`` (without the query) could name different routes to different
    readers: see :data:`_AMBIGUOUS` and :data:`_ENCODED_TWICE`."""
    return bool(_AMBIGUOUS.search(raw_path) or _ENCODED_TWICE.search(unquote(raw_path)))


CTX_KEY = web.RequestKey("keygate_ctx", RequestContext)
ROUTE_KEY = web.RequestKey("keygate_route", str)


@dataclass
class Pipeline:
    """The configured stages of one gateway."""

    settings: GatewaySettings
    routes: RouteTable
    chain: list[Authenticator]
    limiter: RateLimiter
    forwarder: Forwarder
    header_names: IdentityHeaderNames
    metrics: GatewayMetrics
    usage: UsageRecorder | None = None

    def __post_init__(self) -> None:
        # What strip removes, per kind of peer: fixed for the gateway's lifetime.
        self._strip_for_trusted = (*self.protected_headers(), *GATEWAY_WRITTEN)
        self._strip_for_untrusted = (*self._strip_for_trusted, *UNTRUSTED_FORWARDING)

    def context(self, request: web.Request) -> RequestContext:
        """Request id and client address, computed once per request."""
        ctx = request.get(CTX_KEY)
        if ctx is None:
            peer = request.remote or ""
            ctx = RequestContext(
                request_id=wire.request_id_or_new(request.headers.get(wire.REQUEST_ID)),
                client_address=client_address(
                    request.headers, peer_ip=peer, trusted_proxies=self.settings.trusted_proxies
                )
                or None,
            )
            request[CTX_KEY] = ctx
        return ctx

    async def decide(
        self, request: web.Request, path: str
    ) -> tuple[RouteRule, Identity, dict[str, str]]:
        """Authenticate, authorize and rate-limit a request for ``path``.

        Returns the route, the identity and the rate-limit response headers; raises a
        :class:`GatewayError` for every refusal.
        """
        ctx = self.context(request)
        rule, path_workspace = self.routes.match(path)
        request[ROUTE_KEY] = rule.prefix
        if rule.auth is AuthPolicy.NONE:
            return rule, Identity.anonymous(), {}
        try:
            identity = await authenticate(self.chain, request, ctx)
        except GatewayError as error:
            if error.internal_reason == SESSION_UNAVAILABLE and rule.auth is AuthPolicy.OPTIONAL:
                # The app's session service is down: on routes that do not need keygate's
                # word, behave like passthrough (the app still sees its cookie and decides).
                self.metrics.auth_decisions.labels("session", SESSION_UNAVAILABLE).inc()
                identity = Identity.anonymous()
            else:
                method = "session" if error.internal_reason == SESSION_UNAVAILABLE else "token"
                self.metrics.auth_decisions.labels(method, error.internal_reason).inc()
                raise
        else:
            metrics = self.metrics
            metrics.labels(metrics.auth_decisions, identity.auth_method.value, "ok").inc()
        header = None
        if rule.workspace_header:
            values = request.headers.getall(rule.workspace_header, [])
            if len(values) > 1:
                # Which copy would the app read? Refuse rather than guess.
                raise duplicate_header(rule.workspace_header)
            header = values[0] if values else None
        authorize(identity, rule, bound_workspace(rule, path_workspace, header))
        if identity.auth_method is not AuthMethod.TOKEN or identity.token_id is None:
            return rule, identity, {}
        limit = identity.rate_limit or self.settings.rate_limit_per_minute
        decision = await self.limiter.hit(identity.token_id, limit)
        if decision.degraded:
            self.metrics.ratelimit_degraded.inc()
        headers = rate_limit_headers(decision)
        if not decision.allowed:
            self.metrics.ratelimit_decisions.labels("limited").inc()
            raise rate_limited(max(1, decision.retry_after), headers)
        self.metrics.labels(self.metrics.ratelimit_decisions, "allowed").inc()
        if self.usage is not None:
            self.usage.record(identity.token_id)
        return rule, identity, headers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The reverse proxy: every path not reserved for keygate."""
        if is_ambiguous(request.raw_path.split("?", 1)[0]):
            raise bad_path("the path contains encoded slashes or dot segments")
        ctx = self.context(request)
        is_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        peer = request.remote or ""
        # Other spellings of "who is the client" are only believed from trusted proxies. Every
        # spelling goes: X_Real_IP is X-Real-IP to CGI-style servers.
        trusted_peer = is_trusted(parse_address(peer), self.settings.trusted_proxies)
        headers = strip_inbound(
            request.headers,
            self._strip_for_trusted if trusted_peer else self._strip_for_untrusted,
            keep_upgrade=is_websocket,
        )
        rule, identity, limit_headers = await self.decide(request, request.path)
        headers = drop_bearer(
            headers,
            forward_bearer=self.settings.forward_bearer
            and rule.upstream not in (INTROSPECTOR, ADMIN_UI),
        )
        headers.popall("Host", None)
        for name, value in forwarded_headers(
            request.headers,
            peer_ip=peer,
            scheme=request.scheme,
            host=request.host,
            trusted_proxies=self.settings.trusted_proxies,
        ):
            headers[name] = value
        headers[wire.REQUEST_ID] = ctx.request_id
        if rule.upstream in KEYGATE_SERVICES:
            # keygate's own services: they get the shared secret and the fixed header names.
            base = (
                self.settings.introspector_url
                if rule.upstream == INTROSPECTOR
                else self.settings.admin_ui_url
            )
            headers[wire.INTERNAL_SECRET] = self.settings.internal_secret
            names = INTROSPECTOR_IDENTITY
            if ctx.client_address:
                headers[wire.CLIENT_ADDRESS] = ctx.client_address
            if identity.external:
                headers[wire.IDENTITY_SOURCE] = "upstream"
        else:
            base = self.settings.upstream_url if rule.upstream == "app" else rule.upstream
            names = self.header_names
        for name, value in identity_headers(identity, names):
            headers[name] = value
        response_headers = {**limit_headers, wire.REQUEST_ID: ctx.request_id}
        try:
            return await self.forwarder.forward(request, base, headers, response_headers)
        except GatewayError as error:
            kind = "timeout" if error.status == 504 else "unreachable"
            self.metrics.upstream_errors.labels(kind).inc()
            raise

    async def forward_auth(self, request: web.Request) -> web.Response:
        """``/_keygate/auth``: 200 + identity headers, or the refusal, for nginx/Traefik/Envoy.

        The protected request's path comes from ``X-Original-URI`` (nginx) or
        ``X-Forwarded-Uri`` (Traefik); without either, the policy of ``/`` applies.
        """
        # nginx sets X-Original-URI, Traefik X-Forwarded-Uri; each passes the *other* header
        # through from the client. Two different answers mean someone is lying: refuse.
        claimed = {
            value
            for name in ("X-Original-URI", "X-Forwarded-Uri")
            for value in request.headers.getall(name, [])
        }
        if len(claimed) > 1:
            raise bad_path("X-Original-URI and X-Forwarded-Uri disagree")
        original = claimed.pop() if claimed else "/"
        raw_path = original.split("?", 1)[0] or "/"
        if is_ambiguous(raw_path):
            raise bad_path("the original path contains encoded slashes or dot segments")
        # Route policy applies to the path as the proxy and the app will decode it
        # (``/%70rivate`` is ``/private``), exactly as for proxied requests.
        path = unquote(raw_path)
        _, identity, limit_headers = await self.decide(request, path)
        response = web.Response(status=200)
        response.headers.update(limit_headers)
        for name, value in identity_headers(identity, self.header_names):
            response.headers[name] = value
        response.headers[wire.REQUEST_ID] = self.context(request).request_id
        return response

    def protected_headers(self) -> tuple[str, ...]:
        """Every identity header a client must never set: configured and internal names."""
        return (
            *self.header_names.all(),
            *INTROSPECTOR_IDENTITY.all(),
            wire.INTERNAL_SECRET,
            wire.CLIENT_ADDRESS,
            wire.IDENTITY_SOURCE,
        )


def rate_limit_headers(decision: RateDecision) -> dict[str, str]:
    """The rate-limit headers of a bearer response, all describing the same bucket.

    ``X-RateLimit-Reset`` and the draft's ``t`` are *seconds from now* until the bucket is
    full again (not an epoch timestamp).
    """
    reset = max(0, math.ceil(decision.reset_after))
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(reset),
        "RateLimit-Policy": f'"per-token";q={decision.limit};w=60',
        "RateLimit": f'"per-token";r={decision.remaining};t={reset}',
    }
