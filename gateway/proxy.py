"""Runs a request through the stages: strip → authenticate → authorize → limit → mutate → forward.

Each stage lives in :mod:`gateway.pipeline`; this module only sequences them, and answers the
forward-auth question (``/_keygate/auth``) with the same stages minus the forwarding.

The relay (:mod:`gateway.relay`) calls the steps one by one, without a task while no step
needs I/O: :meth:`Pipeline.decide_now` answers or says where it stopped, and
:meth:`Pipeline.finish` carries on with I/O. aiohttp runs the same steps (:meth:`Pipeline.handle`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import SESSION_UNAVAILABLE, GatewayError, rate_limited
from gateway.forwarded import ForwardingTrust, client_address, proxied_request_id
from gateway.identity import LATER, AuthMethod, Identity, RequestContext
from gateway.metrics import GatewayMetrics
from gateway.pipeline.authn import Authenticator, authenticate, authenticate_now
from gateway.pipeline.authz import (
    ADMIN_UI,
    APP,
    INTROSPECTOR,
    AuthPolicy,
    RouteRule,
    RouteTable,
    authorize,
)
from gateway.pipeline.forward import Forwarder
from gateway.pipeline.limit import RateDecision, RateLimiter, rate_limit_headers
from gateway.pipeline.mutate import (
    KEYGATE_SERVICES,
    SERVICE_IDENTITY,
    IdentityHeaderNames,
    Mutator,
)
from gateway.pipeline.outcome import Decided, Outbound, Unfinished
from gateway.pipeline.strip import (
    GATEWAY_WRITTEN,
    UNTRUSTED_FORWARDING,
    original_path,
    protected_headers,
    strip_inbound,
    unambiguous_path,
)
from gateway.pipeline.workspace_header import authorize_request
from gateway.request import ProxiedRequest
from gateway.settings import GatewaySettings
from gateway.usage import UsageRecorder
from keygate_core import headers as wire

CTX_KEY = web.RequestKey("keygate_ctx", RequestContext)
ROUTE_KEY = web.RequestKey("keygate_route", str)


_ANONYMOUS = Identity.anonymous()
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


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
        #: What strip removes from a peer that is not a trusted proxy.
        self.strip_for_untrusted = (*self._strip_for_trusted, *UNTRUSTED_FORWARDING)
        settings = self.settings
        self._mutator = Mutator.configured(self.header_names, settings)
        m = self.metrics  # the counters every admitted request adds to, looked up once:
        self._forwarding = ForwardingTrust(settings.trusted_proxies, m.forwarded_ignored_count)
        self._authenticated = {a: m.labels(m.auth_decisions, a.value, "ok") for a in AuthMethod}
        self._allowed = m.labels(m.ratelimit_decisions, "allowed")
        # Where each kind of route rule's upstream lives; any other value is the rule's own URL.
        self._bases = {
            APP: settings.upstream_url,
            INTROSPECTOR: settings.introspector_url,
            ADMIN_UI: settings.admin_ui_url,
        }

    def context(self, request: web.Request) -> RequestContext:
        """Request id and client address, computed once per aiohttp request."""
        ctx = request.get(CTX_KEY)
        if ctx is None:
            ctx = request[CTX_KEY] = self.new_context(request)
        return ctx

    def new_context(self, request: ProxiedRequest) -> RequestContext:
        """Request id (a trusted proxy's when well-formed, else new) and client address."""
        proxies = self.settings.trusted_proxies
        # Without trusted proxies no header is read (and the relay's request makes none).
        headers = request.headers if proxies else _NO_HEADERS
        peer = request.remote or ""
        return RequestContext(
            request_id=wire.request_id_or_new(proxied_request_id(headers, peer, proxies)),
            client_address=client_address(headers, peer_ip=peer, trusted_proxies=proxies) or None,
        )

    def inbound(self, request: ProxiedRequest, *, keep_upgrade: bool = False) -> CIMultiDict[str]:
        """Strip: refuse an ambiguous path, and the headers without what the client may not
        send (other spellings of "who is the client" are believed from trusted proxies only)."""
        unambiguous_path(request.raw_path)
        trusted_peer = self._forwarding.believed(request.headers, request.remote or "")
        return strip_inbound(
            request.headers,
            self._strip_for_trusted if trusted_peer else self.strip_for_untrusted,
            keep_upgrade=keep_upgrade,
        )

    def decide_now(
        self,
        request: ProxiedRequest,
        ctx: RequestContext,
        rule: RouteRule,
        workspace: str | None,
        headers: CIMultiDict[str] | None = None,
    ) -> Decided | Unfinished:
        """Authenticate, authorize and rate-limit without I/O where that is enough.

        ``rule`` and ``workspace`` are ``self.routes.match(path)``, ``headers`` what
        :meth:`inbound` made (see :func:`authorize_request`). Returns the decision, or where it
        stopped for :meth:`finish`; raises a :class:`GatewayError` for every refusal.
        """
        if rule.auth is AuthPolicy.NONE:
            return rule, _ANONYMOUS, None
        try:
            identity = authenticate_now(self.chain, request, ctx)
        except GatewayError as error:
            self._count_refused(error)
            raise
        if identity is LATER:
            return Unfinished(rule, None)
        self.metrics.batch.count(self._authenticated[identity.auth_method])
        if rule.workspace_header:
            authorize_request(identity, rule, workspace, request, headers)
        else:  # what authorize_request does without a workspace header to read
            authorize(identity, rule, workspace)
        return self._limit_now(rule, identity)

    async def finish(
        self,
        request: ProxiedRequest,
        ctx: RequestContext,
        unfinished: Unfinished,
        workspace: str | None,
        headers: CIMultiDict[str] | None = None,
    ) -> Decided:
        """Carry on from where :meth:`decide_now` stopped, with I/O."""
        rule, identity = unfinished.rule, unfinished.identity
        if identity is None:
            identity = await self._authenticate(request, ctx, rule)
            authorize_request(identity, rule, workspace, request, headers)
            decided = self._limit_now(rule, identity)
            if not isinstance(decided, Unfinished):
                return decided
        assert identity.token_id is not None  # only a token's bucket is left to ask
        limit = identity.rate_limit or self.settings.rate_limit_per_minute
        decision = await self.limiter.hit(identity.token_id, limit)
        return rule, identity, self._counted(decision, identity.token_id)

    async def _authenticate(
        self, request: ProxiedRequest, ctx: RequestContext, rule: RouteRule
    ) -> Identity:
        try:
            identity = await authenticate(self.chain, request, ctx)
        except GatewayError as error:
            if error.internal_reason == SESSION_UNAVAILABLE and rule.auth is AuthPolicy.OPTIONAL:
                # The app's session service is down: on routes that do not need keygate's
                # word, behave like passthrough (the app still sees its cookie and decides).
                self.metrics.auth_decisions.labels("session", SESSION_UNAVAILABLE).inc()
                return _ANONYMOUS
            self._count_refused(error)
            raise
        self.metrics.batch.count(self._authenticated[identity.auth_method])
        return identity

    def _count_refused(self, error: GatewayError) -> None:
        method = "session" if error.internal_reason == SESSION_UNAVAILABLE else "token"
        self.metrics.auth_decisions.labels(method, error.internal_reason).inc()

    def _limit_now(self, rule: RouteRule, identity: Identity) -> Decided | Unfinished:
        """Decided when the limiter answers without Redis (or nothing limits ``identity``);
        else where :meth:`finish` asks Redis."""
        if identity.auth_method is not AuthMethod.TOKEN or identity.token_id is None:
            return rule, identity, None
        limit = identity.rate_limit or self.settings.rate_limit_per_minute
        decision = self.limiter.take_now(identity.token_id, limit)
        if decision is None:
            return Unfinished(rule, identity)
        return rule, identity, self._counted(decision, identity.token_id)

    def _counted(self, decision: RateDecision, token_id: str | None = None) -> RateDecision:
        """``decision``, counted; 429 when it denies."""
        if decision.degraded:
            self.metrics.ratelimit_degraded.inc()
        if not decision.allowed:
            self.metrics.ratelimit_decisions.labels("limited").inc()
            raise rate_limited(max(1, decision.retry_after), rate_limit_headers(decision))
        self.metrics.batch.count(self._allowed)
        if self.usage is not None and token_id is not None:
            self.usage.record(token_id)
        return decision

    def outbound(
        self,
        request: ProxiedRequest,
        ctx: RequestContext,
        headers: CIMultiDict[str],
        decided: Decided,
    ) -> Outbound:
        """Mutate: what goes to the upstream, and where; what the answer gets added."""
        rule, identity, decision = decided
        headers = self._mutator.for_upstream(request, headers, rule.upstream, identity, ctx)
        added = self.answer_headers(ctx, decision)
        foreign = rule.upstream not in KEYGATE_SERVICES
        return Outbound(rule, self.base(rule), headers, added, foreign)

    def base(self, rule: RouteRule) -> str:
        """The base URL of ``rule``'s upstream."""
        return self._bases.get(rule.upstream, rule.upstream)

    @staticmethod
    def answer_headers(ctx: RequestContext, decision: RateDecision | None) -> dict[str, str]:
        """What the gateway adds to an upstream's answer: rate-limit headers, the request id
        (the relay writes the same as bytes: :func:`gateway.relay.added.answer_fields`)."""
        limit_headers = rate_limit_headers(decision) if decision is not None else {}
        return {**limit_headers, wire.REQUEST_ID: ctx.request_id}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The reverse proxy for what the relay hands over (and for in-process tests)."""
        ctx = self.context(request)
        upgrading = request.headers.get("Upgrade", "").lower() == "websocket"
        headers = self.inbound(request, keep_upgrade=upgrading)
        rule, workspace = self.routes.match(request.path)
        request[ROUTE_KEY] = rule.prefix
        decided = self.decide_now(request, ctx, rule, workspace, headers)
        if isinstance(decided, Unfinished):
            decided = await self.finish(request, ctx, decided, workspace, headers)
        out = self.outbound(request, ctx, headers, decided)
        try:
            return await self.forwarder.forward(
                request, out.base, out.headers, out.response_headers, foreign=out.foreign
            )
        except GatewayError as error:
            self.count_upstream_error(error)
            raise

    def count_upstream_error(self, error: GatewayError) -> None:
        """``keygate_gateway_upstream_errors_total`` for a 502 or 504 from forwarding."""
        if error.status not in (502, 504):
            return
        kind = "timeout" if error.status == 504 else "unreachable"
        self.metrics.upstream_errors.labels(kind).inc()

    async def forward_auth(self, request: web.Request) -> web.Response:
        """``/_keygate/auth``: 200 + identity headers, or the refusal, for nginx/Traefik/Envoy.

        The protected request's path comes from ``X-Original-URI`` (nginx),
        ``X-Forwarded-Uri`` (Traefik) or ``X-Envoy-Original-Path`` (Envoy); without any of
        them the answer is 400, never the policy of ``/``. It is matched as proxied paths are.
        """
        raw_path = original_path(request.headers)
        ctx = self.context(request)
        # Route policy applies to the path as the proxy and the app will decode it
        # (``/%70rivate`` is ``/private``), exactly as for proxied requests.
        rule, workspace = self.routes.match(unquote(raw_path))
        request[ROUTE_KEY] = rule.prefix
        decided = self.decide_now(request, ctx, rule, workspace)
        if isinstance(decided, Unfinished):
            decided = await self.finish(request, ctx, decided, workspace)
        _, identity, decision = decided
        response = web.Response(status=200)
        if decision is not None:
            response.headers.update(rate_limit_headers(decision))
        self._mutator.for_answer(response.headers, identity)
        response.headers[wire.REQUEST_ID] = ctx.request_id
        return response
