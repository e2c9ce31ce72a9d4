"""One request and its response through the relay: decide, send upstream, relay the answer.

Everything here runs in protocol callbacks; a task exists only while a step needs I/O (a cold
token, the limiter asking Redis, a session check, opening an upstream connection). Bodies are
never held whole: request bytes go upstream as they arrive and response bytes go to the client
as they arrive, each side pausing the other's reads while its own writes back up.

A response body with a ``Content-Length`` reaches the client byte for byte. A chunked or
close-delimited body is decoded and chunked again by the relay, so nothing the upstream sends
after its last chunk can ever reach the client as a response of its own.
"""

from __future__ import annotations

import logging
import time

from multidict import CIMultiDict

from gateway.errors import (
    GatewayError,
    bad_gateway,
    body_timeout,
    gateway_timeout,
    refused_secret,
    service_refused_secret,
)
from gateway.identity import RequestContext
from gateway.pipeline.authz import RouteRule
from gateway.pipeline.outcome import Decided, Unfinished
from gateway.pipeline.strip import is_ambiguous, unambiguous_path
from gateway.relay.added import Added, added, answer_fields, token_answer_fields
from gateway.relay.answer import Answering
from gateway.relay.heads import request_head
from gateway.relay.response_head import ResponseHead
from gateway.relay.upstream import UpstreamConnection, UpstreamPool
from keygate_core.headers import new_request_id
from keygate_core.logs import request_id_var
from keygate_core.problems import internal_error, render_problem

log = logging.getLogger("keygate.gateway")

#: Request-body bytes held while the upstream connection opens, before the client is paused.
_HELD_BODY = 256 * 1024


class Exchange(Answering):
    """One request/response on a client connection."""

    __slots__ = ()

    # -- deciding ---------------------------------------------------------------------------

    def start(self, buffered: bytearray) -> None:
        """Take the request's first body bytes from ``buffered`` (the client's buffer) and
        decide what to do with the request."""
        if self.body_left and buffered:
            take = min(self.body_left, len(buffered))
            self._held = buffered[:take]
            del buffered[:take]
            self.body_left -= take
        relay = self.relay
        pipeline = relay.pipeline
        request = self.request
        client = self.client
        try:
            rule, workspace = pipeline.routes.match(request.path)
            # The pool of the lane, when the request takes it: a plain request (read with the
            # lane's field lines) from a peer that is not a trusted proxy, on a rule that allows it.
            lane = None
            if request.lane_lines is not None and not client.trusted_peer:
                plan = relay.plan(rule)
                lane = plan.lane_pool
                if lane is not None:
                    if plan.express and self._express(rule, lane):
                        return
                    if plan.warm and workspace is None and self._warm(rule, lane):
                        return
            if client.trusted_peer:
                ctx = pipeline.new_context(request)
                self.client_address = ctx.client_address
            else:  # what new_context makes of a request from anyone else, without its headers
                # (tuple.__new__: the named tuple without its Python-level __new__)
                ctx = tuple.__new__(RequestContext, (new_request_id(), client.client_address))
            self.request_id = ctx.request_id
            if is_ambiguous(request.encoded_path):
                unambiguous_path(request.raw_path)  # refuses it, saying why
            self.route = rule.prefix
            fields = None
            if lane is not None:
                fields, self._pool = request.lane_lines, lane
            headers = pipeline.inbound(request) if fields is None else None
            decided = pipeline.decide_now(request, ctx, rule, workspace, headers)
            if isinstance(decided, Unfinished):
                self._task = relay.loop.create_task(
                    self._finish(ctx, headers, fields, decided, workspace)
                )
                return
            self._forward(ctx, headers, fields, decided)
        except GatewayError as error:
            self.refuse(error)
        except Exception:
            self.fail()

    def _express(self, rule: RouteRule, pool: UpstreamPool) -> bool:
        """Send upstream at once a request the stages have nothing to decide on, when its path
        is unambiguous: one :meth:`start` found taking the lane to ``pool`` on a route anyone
        may take (:class:`~gateway.relay.server.RoutePlan`). It gets what :meth:`start` and
        :meth:`_forward` would give it, the lane's head with an anonymous identity and the
        request id added to the answer, in fewer steps. ``False``: :meth:`start` goes on."""
        request = self.request
        if is_ambiguous(request.encoded_path):
            return False
        self.request_id = request_id = new_request_id()
        self.route = rule.prefix
        assert request.lane_lines is not None
        lines = self.relay.lane.anonymous_lines
        to_answer = answer_fields(request_id, None)
        self._send_lane(pool, request.lane_lines, request_id, lines, to_answer)
        return True

    def _warm(self, rule: RouteRule, pool: UpstreamPool) -> bool:
        """Send upstream at once a request the compiled warm-token decision answers
        (:mod:`gateway.relay.warm`), on a route whose token requests it may decide
        (:class:`~gateway.relay.server.RoutePlan`), when its path is unambiguous: what
        :meth:`start` and :meth:`_forward` would send, in fewer steps. ``False``, with nothing
        taken or counted: :meth:`start` goes on."""
        request = self.request
        values = request.authorization
        if len(values) != 1 or is_ambiguous(request.encoded_path):
            return False
        relay = self.relay
        assert relay.warm is not None  # see RoutePlan.warm
        decided = relay.warm.decide(values[0], time.monotonic())
        if decided is None:
            return False
        identity, _, limit_lines = decided
        self.request_id = request_id = new_request_id()
        self.route = rule.prefix
        assert request.lane_lines is not None
        lines = relay.lane.identity_lines(identity)
        to_answer = token_answer_fields(request_id, limit_lines)
        self._send_lane(pool, request.lane_lines, request_id, lines, to_answer)
        return True

    async def _finish(
        self,
        ctx: RequestContext,
        headers: CIMultiDict[str] | None,
        fields: bytes | None,
        unfinished: Unfinished,
        workspace: str | None,
    ) -> None:
        request_id_var.set(ctx.request_id)
        pipeline = self.relay.pipeline
        try:
            decided = await pipeline.finish(self.request, ctx, unfinished, workspace, headers)
            self._task = None
            self._forward(ctx, headers, fields, decided)
        except GatewayError as error:
            self.refuse(error)
        except Exception:
            self.fail()

    # -- sending upstream -------------------------------------------------------------------

    def _forward(
        self,
        ctx: RequestContext,
        headers: CIMultiDict[str] | None,
        fields: bytes | None,
        decided: Decided,
    ) -> None:
        """Send the request upstream: its head from the lane's ``fields``, or from the
        stages' ``headers``."""
        relay = self.relay
        if fields is not None:
            _, identity, decision = decided
            lines = relay.lane.identity_lines(identity)
            assert self._pool is not None  # the rule's lane pool: see start
            to_answer = answer_fields(ctx.request_id, decision)
            self._send_lane(self._pool, fields, ctx.request_id, lines, to_answer)
            return
        assert headers is not None
        request = self.request
        out = relay.pipeline.outbound(request, ctx, headers, decided)
        pool = self._pool = relay.pool(out.base)
        target = pool.prefix + request.raw_path
        self._head = request_head(request.method, target, pool.host_header, out.headers)
        self._added = added(out.response_headers)
        self._foreign = out.foreign
        self._send(pool)

    def _send_lane(
        self,
        pool: UpstreamPool,
        fields: bytes,
        request_id: str,
        identity_lines: bytes,
        to_answer: Added,
    ) -> None:
        """Send the lane's head upstream: the request's ``fields``, then the gateway's own;
        ``to_answer`` is what the answer gets added."""
        request = self.request
        self._pool = pool
        first = (request.method.encode(), pool.raw_prefix + request.target, pool.raw_host)
        forwarded = self.client.forwarded(request.host)
        self._head = self.relay.lane.head(first, fields, forwarded, request_id, identity_lines)
        self._added = to_answer
        self._send(pool)

    def _send(self, pool: UpstreamPool) -> None:
        """Send the head on an idle connection of ``pool``, or on a new one once open."""
        connection = pool.acquire_now()
        if connection is not None:
            self._attach(connection, reused=True)
        else:
            pool.connect(self._connected, self._unreachable)

    def _connected(self, connection: UpstreamConnection) -> None:
        if self.over:
            assert self._pool is not None
            self._pool.release(connection)
        else:
            # One handed over by the pool (it had served another request) may have been closed
            # by the upstream, like any kept-alive connection: it is retried the same way.
            self._attach(connection, reused=connection.idle_since > 0)

    def _unreachable(self, exc: BaseException) -> None:
        if self.over:
            return
        if isinstance(exc, TimeoutError):  # before OSError: asyncio's is both, connect's too
            self._answer_upstream_error(gateway_timeout())
        elif isinstance(exc, OSError):
            self._answer_upstream_error(bad_gateway())
        else:
            self.fail(exc)

    def _attach(self, connection: UpstreamConnection, *, reused: bool) -> None:
        self.upstream = connection
        self._reused = reused
        connection.exchange = self
        held, self._held = self._held, None
        assert connection.transport is not None
        if held is None:
            connection.transport.write(self._head)
        else:
            connection.transport.write(self._head + held)
            self.client.resume_reading("held")
        self._last_read = self.relay.loop.time()
        self.attached = True

    def client_body(self, data: bytes) -> bytes:
        """Request-body bytes from the client; returns what follows the body (the next
        pipelined request's bytes)."""
        take = data[: self.body_left]
        self.body_left -= len(take)
        self._last_read = self.relay.loop.time()
        if self.upstream is not None:
            self.upstream.write(take)
        elif not self.over:
            if self._held is None:
                self._held = bytearray()
            self._held += take
            if len(self._held) > _HELD_BODY:
                self.client.pause_reading("held")
        return data[len(take) :]

    # -- waiting ----------------------------------------------------------------------------

    def _waiting_for_body(self) -> bool:
        """The client still owes body bytes and is not held back by the upstream."""
        return bool(self.body_left) and not self.client.paused_by_upstream()

    def _limit(self) -> float:
        """How long this exchange may go without a byte."""
        return self.relay.body_timeout if self._waiting_for_body() else self.relay.timeout

    def check_deadline(self, now: float) -> None:
        """Called by the relay's sweep: end this exchange if it has gone too long without a
        byte (see :meth:`_limit`)."""
        if self.over or now - self._last_read < self._limit():
            return
        if self._response is not None:
            self._cut()
        elif self._waiting_for_body():
            self.refuse(body_timeout())
        else:
            self._answer_upstream_error(gateway_timeout())

    # -- refusals ---------------------------------------------------------------------------

    def _refused(self, response: ResponseHead) -> bool:
        """keygate's own service refusing this gateway's internal secret (a 401) is no answer
        for the client: 503, never the 401 that would tell it to discard a good token."""
        refused = response.field(b"x-keygate-refused") or b""
        if refused_secret(401, refused.decode("latin-1")):
            self.refuse(service_refused_secret())
            return True
        return False

    def refuse(self, error: GatewayError) -> None:
        """Answer with ``error`` (problem+json) instead of the upstream."""
        token = request_id_var.set(self.request_id)
        try:
            log.info(
                "request refused",
                extra={
                    "status": error.status,
                    "reason": error.internal_reason,
                    "path": self.request.path,
                },
            )
        finally:
            request_id_var.reset(token)
        headers = {"X-Request-Id": self.request_id} if self.request_id else {}
        self._answer(render_problem(error, self.request_id or None, headers), error.status)

    def fail(self, exc: BaseException | None = None) -> None:
        """A bug: logged with its request id, answered 500."""
        token = request_id_var.set(self.request_id)
        try:
            log.error(
                "unhandled error",
                exc_info=exc if exc is not None else True,
                extra={"path": self.request.path},
            )
        finally:
            request_id_var.reset(token)
        response = internal_error(self.request_id or None)
        if self.request_id:
            response.headers["X-Request-Id"] = self.request_id
        self._answer(response, 500)
