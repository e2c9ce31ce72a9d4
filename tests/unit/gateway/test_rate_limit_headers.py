"""The rate-limit headers of a bearer response all describe the same bucket, and the relay
writes the same ones."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity import RequestContext
from gateway.pipeline.limit import RATE_LIMIT_HEADERS, RateDecision, rate_limit_headers
from gateway.proxy import Pipeline
from gateway.relay.added import added, answer_fields


@pytest.mark.parametrize(
    ("reset_after", "reset"),
    [
        pytest.param(0.0, "0", id="full"),
        pytest.param(0.1, "1", id="rounded-up"),
        pytest.param(59.2, "60", id="nearly-empty"),
        pytest.param(-0.5, "0", id="never-negative"),
    ],
)
def test_headers_describe_one_bucket(reset_after: float, reset: str) -> None:
    """Limit, remaining and whole seconds until full, in both header dialects."""
    decision = RateDecision(
        allowed=True, limit=600, remaining=42, reset_after=reset_after, retry_after=0
    )
    assert rate_limit_headers(decision) == {
        "X-RateLimit-Limit": "600",
        "X-RateLimit-Remaining": "42",
        "X-RateLimit-Reset": reset,
        "RateLimit-Policy": '"per-token";q=600;w=60',
        "RateLimit": f'"per-token";r=42;t={reset}',
    }


def test_the_relay_knows_every_rate_limit_header() -> None:
    """RATE_LIMIT_HEADERS names what rate_limit_headers writes: the relay passes an answer on
    as it came only when it can tell none of the fields it adds are in it already."""
    decision = RateDecision(allowed=True, limit=600, remaining=1, reset_after=1.0, retry_after=0)
    assert tuple(rate_limit_headers(decision)) == RATE_LIMIT_HEADERS


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 10**9),
    remaining=st.integers(0, 10**9),
    reset_after=st.floats(-1.0, 10**7, allow_nan=False),
    limited=st.booleans(),
)
def test_the_relay_writes_the_headers_the_aiohttp_path_writes(
    limit: int, remaining: int, reset_after: float, limited: bool
) -> None:
    """The relay writes the answer's added fields as bytes in one step
    (``answer_fields``); they are the fields ``Pipeline.answer_headers`` gives the aiohttp
    path, in the same order, for a token's decision and for a request nothing limits."""
    decision = RateDecision(True, limit, remaining, reset_after, 0) if limited else None
    expected = added(Pipeline.answer_headers(RequestContext("rid-7", None), decision))
    assert answer_fields("rid-7", decision) == expected
