"""The compiled warm-token decision decides as the stages do, or leaves the request to them.

Two gateways' worth of stages with the same state: one decides every request with the Python
stages (:meth:`Pipeline.decide_now`), the other as the relay does, the compiled decision first
(:mod:`gateway.relay.warm`) and the stages for what it declines. After each request the two
must have answered alike (the identity, the rate-limit decision and its header lines, or the
same refusal) and left the same state behind: the L1 cache and its LRU order, the lease book,
every metric sample, the usage counts. The clocks are fixed by the test, so every figure is
compared exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError
from gateway.identity import RequestContext
from gateway.metrics import GatewayMetrics
from gateway.pipeline.authn.bearer import BearerAuthenticator
from gateway.pipeline.authz import DEFAULT_RULE, RouteTable
from gateway.pipeline.limit import (
    LocalTokenBucket,
    RedisTokenBucket,
    rate_limit_lines,
)
from gateway.pipeline.limit_lease import LeaseGrant
from gateway.pipeline.mutate import IdentityHeaderNames
from gateway.pipeline.outcome import Unfinished
from gateway.proxy import Pipeline
from gateway.relay.heads import RelayRequest
from gateway.relay.warm import CompiledWarm
from gateway.settings import GatewaySettings
from gateway.token_cache import L1Cache
from gateway.usage import UsageRecorder
from keygate_cli.settings import load_settings
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.token_format import generate_token, parse_token

DEFAULT_LIMIT = 1200
#: Tokens the cases use: warm in both caches (with their own limits), and one never cached.
TOKENS = [generate_token()[0] for _ in range(4)]
LIMITS = [None, 0, 90_000, 5]
START_WALL = 1_800_000_000.0
START_MONOTONIC = 5_000.0


class Clocks:
    """The wall clock (the L1 cache's, the usage minute's) and the monotonic one (the
    limiter's), set by the test."""

    def __init__(self) -> None:
        self.wall = START_WALL
        self.monotonic = START_MONOTONIC

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> Clocks:
    """The process's clocks, fixed: the limiter reads ``time.monotonic``, the usage recorder
    ``time.time``, and the relay passes ``time.monotonic()`` to the compiled decision."""
    fixed = Clocks()
    monkeypatch.setattr(time, "monotonic", lambda: fixed.monotonic)
    monkeypatch.setattr(time, "time", lambda: fixed.wall)
    return fixed


@dataclass
class Gateway:
    """One gateway's stages, and its compiled decision when it has one."""

    pipeline: Pipeline
    cache: L1Cache
    metrics: GatewayMetrics
    usage: UsageRecorder
    warm: CompiledWarm | None

    def decide(self, value: str) -> object:
        """What the gateway decides for a request with ``value`` as its only Authorization."""
        if self.warm is not None:
            found = self.warm.decide(value, time.monotonic())
            if found is not None:
                identity, decision, lines = found
                return "decided", _identity(identity), decision, lines
        fields = [(b"Authorization", value.encode("utf-8", "surrogateescape"))]
        request = RelayRequest("GET", b"/", fields, "198.51.100.7", 0, True, False, "a", [value])
        ctx = RequestContext("rid", None)
        try:
            decided = self.pipeline.decide_now(request, ctx, DEFAULT_RULE, None)
        except GatewayError as error:
            return "refused", error.status, error.internal_reason
        if isinstance(decided, Unfinished):
            return "unfinished", _identity(decided.identity)
        _, identity, decision = decided
        limit_lines = rate_limit_lines(decision) if decision is not None else None
        return "decided", _identity(identity), decision, limit_lines

    def state(self) -> object:
        """Everything a decision may change, comparable between two gateways."""
        self.metrics.batch.flush()
        samples = sorted(
            (sample.name, tuple(sorted(sample.labels.items())), sample.value)
            for metric in self.metrics.registry.collect()
            for sample in metric.samples
            if not sample.name.endswith("_created")
        )
        limiter = self.pipeline.limiter
        assert isinstance(limiter, RedisTokenBucket)
        book = limiter._book._states
        return (
            list(self.cache._entries.items()),
            [(key, state) for key, state in book.items()],
            samples,
            dict(self.usage._pending),
        )


def _identity(identity: Any) -> object:
    return None if identity is None else (identity.token_id, identity.user_id, identity.rate_limit)


def _gateway(compiled: bool, keyed: Any, results: list[IntrospectionResult]) -> Gateway:
    settings = load_settings(
        GatewaySettings,
        {
            "KEYGATE_INTERNAL_SECRET": "s" * 40,
            "KEYGATE_RATE_LIMIT_PER_MINUTE": str(DEFAULT_LIMIT),
        },
    )
    cache = L1Cache(3, 30, clock=lambda: time.time())
    cache._keyed = keyed.copy()  # the same MAC key for both gateways
    cache.listening = True
    for token, result in zip(TOKENS[:3], results, strict=True):
        cache.put(parse_token(token), result, cache.epoch)
    metrics = GatewayMetrics()
    usage = UsageRecorder(None, max_pending=2)  # type: ignore[arg-type]
    # Its lookups counted as the gateway's app counts them; it never asks the introspector.
    bearer = BearerAuthenticator(
        None,  # type: ignore[arg-type]
        cache,
        on_lookup=lambda found: metrics.batch.count(metrics.labels(metrics.l1_lookups, found)),
    )
    # A client that is never used: every case grants leases itself, and a request that would
    # need Redis stops where the stages stop (Unfinished).
    limiter = RedisTokenBucket(aioredis.Redis(), lease_seconds=1.0)
    pipeline = Pipeline(
        settings=settings,
        routes=RouteTable([DEFAULT_RULE]),
        chain=[bearer],
        limiter=limiter,
        forwarder=None,  # type: ignore[arg-type]  # decisions only
        header_names=IdentityHeaderNames(),
        metrics=metrics,
        usage=usage,
    )
    warm = CompiledWarm.of(pipeline) if compiled else None
    assert not compiled or warm is not None
    return Gateway(pipeline, cache, metrics, usage, warm)


def _results() -> list[IntrospectionResult]:
    return [
        IntrospectionResult(
            active=True,
            token_id=f"00000000-0000-0000-0000-00000000000{n}",
            public_id=parse_token(token).public_id,
            user_id=f"user-{n}",
            rate_limit=limit,
            expires_at=int(START_WALL) + 20 if n == 2 else None,
        )
        for n, (token, limit) in enumerate(zip(TOKENS[:3], LIMITS[:3], strict=True))
    ]


def _value(token: int, spelling: str) -> str:
    text = TOKENS[token]
    return {
        "plain": f"Bearer {text}",
        "lower": f"bearer {text}",
        "upper": f"BEARER {text}",
        "wrong secret": f"Bearer {generate_token(parse_token(text).public_id)[0]}",
        "two spaces": f"Bearer  {text}",
        "trailing blank": f"Bearer {text} ",
        "other scheme": f"Basic {text}",
        "not ascii": f"Bearer {text[:-1]}é",
        "short": f"Bearer {text[:-1]}",
    }[spelling]


SPELLINGS = [
    "plain",
    "lower",
    "upper",
    "wrong secret",
    "two spaces",
    "trailing blank",
    "other scheme",
    "not ascii",
    "short",
]

Step = tuple[str, int, Any]
_STEPS = st.one_of(
    st.tuples(st.just("request"), st.integers(0, 3), st.sampled_from(SPELLINGS)),
    st.tuples(st.just("request"), st.integers(0, 3), st.just("plain")),
    st.tuples(st.just("advance"), st.just(0), st.sampled_from([0.001, 0.3, 0.9, 1.5, 12.0])),
    st.tuples(st.just("grant"), st.integers(0, 3), st.integers(0, 4)),
    st.tuples(st.just("deny"), st.integers(0, 3), st.integers(1, 3000)),
    st.tuples(st.just("listening"), st.just(0), st.booleans()),
    st.tuples(st.just("evict"), st.integers(0, 3), st.just(None)),
)


def _limit_of(token: int) -> int:
    return LIMITS[token] or DEFAULT_LIMIT


def _apply(gateway: Gateway, step: Step, results: list[IntrospectionResult]) -> object:
    kind, token, arg = step
    limiter = gateway.pipeline.limiter
    assert isinstance(limiter, RedisTokenBucket)
    token_id = results[min(token, 2)].token_id
    assert token_id is not None
    if kind == "request":
        return gateway.decide(_value(token, arg))
    if kind == "grant":  # a lease of ``arg`` tokens, as Redis would have answered
        limiter._book.grant(
            token_id, _limit_of(token), time.monotonic(), LeaseGrant(arg, 7, 900, 0)
        )
    elif kind == "deny":  # the bucket left without a whole token for ``arg`` ms
        limiter._book.grant(
            token_id, _limit_of(token), time.monotonic(), LeaseGrant(0, 0, 4000, arg)
        )
    elif kind == "listening":
        gateway.cache.listening = arg
    elif kind == "evict":
        gateway.cache.evict(parse_token(TOKENS[token]).public_id)
    return None


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_STEPS, min_size=1, max_size=40))
def test_the_compiled_decision_decides_and_counts_as_the_stages(
    clocks: Clocks, steps: list[Step]
) -> None:
    clocks.wall, clocks.monotonic = START_WALL, START_MONOTONIC
    results = _results()
    keyed = L1Cache(1, 1)._keyed
    stages, relay = _gateway(False, keyed, results), _gateway(True, keyed, results)
    for step in steps:
        if step[0] == "advance":
            clocks.advance(step[2])
            continue
        assert _apply(relay, step, results) == _apply(stages, step, results), step
        assert relay.state() == stages.state(), step


def test_a_warm_token_with_a_lease_is_decided_compiled(clocks: Clocks) -> None:
    """The common case takes the compiled decision once the stages have made the token's
    identity, and answers the bucket as the lease reports it; once the lease is spent, the
    stages take over (and find it spent)."""
    results = _results()
    gateway = _gateway(True, L1Cache(1, 1)._keyed, results)
    assert gateway.warm is not None
    limiter = gateway.pipeline.limiter
    assert isinstance(limiter, RedisTokenBucket)
    token_id = results[0].token_id
    assert token_id is not None
    value = f"Bearer {TOKENS[0]}"
    limiter._book.grant(token_id, DEFAULT_LIMIT, time.monotonic(), LeaseGrant(3, 7, 900, 0))
    assert gateway.warm.decide(value, time.monotonic()) is None  # no identity made yet
    by_stages = gateway.decide(value)
    assert isinstance(by_stages, tuple) and by_stages[:2] == ("decided", _identity(results[0]))
    clocks.advance(0.1)
    found = gateway.warm.decide(value, time.monotonic())
    assert found is not None
    identity, decision, lines = found
    assert identity.token_id == token_id and identity.user_id == "user-0"
    # Two tokens of three taken: the bucket as Redis left it (7) plus the one still leased;
    # full in the grant's 900 ms less the leased token's refill (50 ms) and the 100 ms since.
    assert decision[:3] == (True, DEFAULT_LIMIT, 8) and decision[4:] == (0, False)
    assert decision.reset_after == pytest.approx(0.75)
    assert lines == rate_limit_lines(decision)
    assert b"X-RateLimit-Remaining: 8\r\n" in lines
    assert gateway.warm.decide(value, time.monotonic()) is not None
    assert gateway.warm.decide(value, time.monotonic()) is None  # spent
    assert gateway.decide(value) == ("unfinished", _identity(identity))
    gateway.metrics.batch.flush()
    registry = gateway.metrics.registry
    hits = registry.get_sample_value("keygate_gateway_l1_cache_total", {"result": "hit"})
    allowed = registry.get_sample_value("keygate_ratelimit_decisions_total", {"result": "allowed"})
    assert (hits, allowed) == (4, 3)
    assert dict(gateway.usage._pending) == {(token_id, int(clocks.wall) // 60): 3}


def test_the_compiled_decision_stands_only_for_the_stages_it_knows() -> None:
    """A gateway whose limiter is not the leased Redis bucket has no compiled decision."""
    gateway = _gateway(True, L1Cache(1, 1)._keyed, _results())
    pipeline = gateway.pipeline
    pipeline.limiter = LocalTokenBucket()
    assert CompiledWarm.of(pipeline) is None
