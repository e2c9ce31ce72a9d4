"""Runs a request through the stages: strip → authenticate → authorize → limit → mutate → forward.

Each stage lives in :mod:`gateway.pipeline`; this module only sequences them, and answers the
forward-auth question (``/_keygate/auth``) with the same stages minus the forwarding.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from gateway.errors import SESSION_UNAVAILABLE, GatewayError, duplicate_header, rate_limited
from gateway.forwarded import client_address, is_trusted, parse_address
from gateway.identity import AuthMethod, Identity, RequestContext
from gateway.metrics import GatewayMetrics
from gateway.pipeline.authn import Authenticator, authenticate
from gateway.pipeline.authz import (
    ADMIN_UI,
    APP,
    INTROSPECTOR,
    AuthPolicy,
    RouteRule,
    RouteTable,
    authorize,
)
from gateway.pipeline.authz import workspace_of as bound_workspace
from gateway.pipeline.forward import Forwarder
from gateway.pipeline.limit import RateLimiter, rate_limit_headers
from gateway.pipeline.mutate import SERVICE_IDENTITY, IdentityHeaderNames, Mutator
from gateway.pipeline.strip import (
    GATEWAY_WRITTEN,
    UNTRUSTED_FORWARDING,
    original_path,
    protected_headers,
    strip_inbound,
    unambiguous_path,
)
from gateway.settings import GatewaySettings
from gateway.usage import UsageRecorder
from keygate_core import headers as wire

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
        protected = protected_headers(self.header_names, SERVICE_IDENTITY)
        self._strip_for_trusted = (*protected, *GATEWAY_WRITTEN)
        self._strip_for_untrusted = (*self._strip_for_trusted, *UNTRUSTED_FORWARDING)
        settings = self.settings
        self._mutator = Mutator(
            self.header_names,
            settings.internal_secret,
            settings.forward_bearer,
            settings.trusted_proxies,
        )
        # Where each kind of route rule's upstream lives; any other value is the rule's own URL.
        self._bases = {
            APP: settings.upstream_url,
            INTROSPECTOR: settings.introspector_url,
            ADMIN_UI: settings.admin_ui_url,
        }

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
        unambiguous_path(request.raw_path)
        ctx = self.context(request)
        # Other spellings of "who is the client" are only believed from trusted proxies. Every
        # spelling goes: X_Real_IP is X-Real-IP to CGI-style servers.
        trusted_peer = is_trusted(
            parse_address(request.remote or ""), self.settings.trusted_proxies
        )
        headers = strip_inbound(
            request.headers,
            self._strip_for_trusted if trusted_peer else self._strip_for_untrusted,
            keep_upgrade=request.headers.get("Upgrade", "").lower() == "websocket",
        )
        rule, identity, limit_headers = await self.decide(request, request.path)
        headers = self._mutator.for_upstream(request, headers, rule.upstream, identity, ctx)
        base = self._bases.get(rule.upstream, rule.upstream)
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
        raw_path = original_path(request.headers)
        # Route policy applies to the path as the proxy and the app will decode it
        # (``/%70rivate`` is ``/private``), exactly as for proxied requests.
        _, identity, limit_headers = await self.decide(request, unquote(raw_path))
        response = web.Response(status=200)
        response.headers.update(limit_headers)
        self._mutator.for_answer(response.headers, identity)
        response.headers[wire.REQUEST_ID] = self.context(request).request_id
        return response
