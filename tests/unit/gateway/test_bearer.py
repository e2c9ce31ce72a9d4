"""``bearer_token``: exactly one Authorization header of at most 1024 characters; Bearer in any
case is ours, other schemes are not; a missing or spaced-out token is refused.

Each case goes through a real aiohttp server, so the function sees headers as the HTTP parser
delivers them (leading and trailing whitespace already trimmed). The authenticator's one-step
reading of the common value is compared with this step-by-step one on the relay's requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError
from gateway.identity import LATER, Identity, RequestContext
from gateway.pipeline.authn import bearer_token
from gateway.pipeline.authn.bearer import BearerAuthenticator, token_step_by_step
from gateway.relay.heads import RelayRequest
from gateway.token_cache import L1Cache
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.problems import Problem
from keygate_core.token_format import ParsedToken, generate_token, parse_token

LIMIT = 1024
Headers = list[tuple[str, str]]
ReadBearer = Callable[[Headers], Awaitable[dict[str, Any]]]


async def _read_bearer(request: web.Request) -> web.Response:
    """What ``bearer_token`` made of this request, as JSON."""
    try:
        return web.json_response({"token": bearer_token(request)})
    except Problem as problem:
        return web.json_response(
            {"status": problem.status, "reason": problem.reason, "detail": problem.detail}
        )


@pytest.fixture
async def read_bearer(aiohttp_client: Any) -> ReadBearer:
    """Send ``headers`` to a server that answers with what ``bearer_token`` returned or raised."""
    app = web.Application()
    app.router.add_get("/", _read_bearer)
    client = await aiohttp_client(app)

    async def read(headers: Headers) -> dict[str, Any]:
        response = await client.get("/", headers=headers)
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result

    return read


ACCEPTED: dict[str, tuple[Headers, str | None]] = {
    "no-header": ([], None),
    "bearer": ([("Authorization", "Bearer kg_abc")], "kg_abc"),
    "lower-case-scheme": ([("Authorization", "bearer kg_abc")], "kg_abc"),
    "upper-case-scheme": ([("Authorization", "BEARER kg_abc")], "kg_abc"),
    "spaces-after-scheme": ([("Authorization", "Bearer    kg_abc")], "kg_abc"),
    "basic": ([("Authorization", "Basic YWxpY2U6c2VjcmV0")], None),
    "digest": ([("Authorization", 'Digest username="alice"')], None),
    "scheme-glued-to-token": ([("Authorization", "Bearerkg_abc")], None),
    "tab-after-scheme": ([("Authorization", "Bearer\tkg_abc")], None),
    "at-the-limit": ([("Authorization", "Bearer " + "x" * (LIMIT - 7))], "x" * (LIMIT - 7)),
}


@pytest.mark.parametrize(("headers", "token"), list(ACCEPTED.values()), ids=list(ACCEPTED))
async def test_a_single_header_gives_the_token_or_none(
    read_bearer: ReadBearer, headers: Headers, token: str | None
) -> None:
    """The token after ``Bearer `` (any case); ``None`` without a header or for another scheme."""
    assert await read_bearer(headers) == {"token": token}


REFUSED: dict[str, tuple[Headers, int, str, str]] = {
    "two-headers": (
        [("Authorization", "Bearer kg_abc"), ("Authorization", "Bearer kg_abc")],
        400,
        "invalid_request",
        "exactly one",
    ),
    "bearer-and-basic": (
        [("Authorization", "Basic YWxpY2U6c2VjcmV0"), ("Authorization", "Bearer kg_abc")],
        400,
        "invalid_request",
        "exactly one",
    ),
    "over-the-limit": (
        [("Authorization", "Bearer " + "x" * (LIMIT - 6))],
        400,
        "invalid_request",
        "too long",
    ),
    "over-the-limit-basic": (
        [("Authorization", "Basic " + "x" * (LIMIT - 5))],
        400,
        "invalid_request",
        "too long",
    ),
    "space-inside-token": (
        [("Authorization", "Bearer kg_a b")],
        400,
        "invalid_request",
        "whitespace",
    ),
    "tab-inside-token": (
        [("Authorization", "Bearer kg_a\tb")],
        400,
        "invalid_request",
        "whitespace",
    ),
    "scheme-only": ([("Authorization", "Bearer")], 401, "invalid_token", "invalid"),
    "scheme-and-spaces": ([("Authorization", "Bearer    ")], 401, "invalid_token", "invalid"),
}


@pytest.mark.parametrize(
    ("headers", "status", "reason", "fragment"), list(REFUSED.values()), ids=list(REFUSED)
)
async def test_a_malformed_authorization_is_refused(
    read_bearer: ReadBearer, headers: Headers, status: int, reason: str, fragment: str
) -> None:
    """Duplicates, over-long values and spaced-out tokens are 400; an empty Bearer is 401."""
    refused = await read_bearer(headers)
    assert (refused["status"], refused["reason"]) == (status, reason)
    assert fragment in refused["detail"]


_TOKEN, _ = generate_token()


def _outcome(read: Callable[[], object]) -> object:
    """What ``read`` returns, or the status and reason it refuses with."""
    try:
        return read()
    except GatewayError as error:
        return (error.status, error.internal_reason)


_PUBLIC_ID = _TOKEN[3:15]
#: The token with one character of its secret not ASCII: a byte the relay read as text, é.
_NOT_ASCII = [_TOKEN[:20] + "\udce9" + _TOKEN[21:], _TOKEN[:20] + "é" + _TOKEN[21:]]
#: Authorization values, one or two: the token, near misses of it and other schemes.
_VALUES = st.lists(
    st.tuples(
        st.sampled_from(["Bearer", "bearer", "BEARER", "BeArEr", "Basic", "Bearerx", ""]),
        st.sampled_from([" ", "  ", "\t", ""]),
        st.sampled_from(
            [
                _TOKEN,
                _TOKEN[:-1] + ("A" if _TOKEN[-1] != "A" else "B"),  # the checksum fails
                _TOKEN[:-1],
                _TOKEN + "x",
                _TOKEN + " ",
                _TOKEN.upper(),
                generate_token(_PUBLIC_ID)[0],  # its id with another secret
                *_NOT_ASCII,
                "kg_a b",
                "",
            ]
        ),
    ).map("".join),
    min_size=1,
    max_size=2,
)


@settings(max_examples=400, deadline=None)
@given(values=_VALUES)
def test_the_authenticator_reads_a_token_as_bearer_token_and_parse_token_do(
    values: list[str],
) -> None:
    """The authenticator reads the common ``Bearer <token>`` in one step; whatever the value,
    it finds the same token, or refuses with the same status and reason."""
    fields = [(b"Authorization", value.encode("utf-8", "surrogateescape")) for value in values]
    request = RelayRequest("GET", b"/", fields, "198.51.100.7", 0, True, False, "a", values)
    read = BearerAuthenticator._token  # the authenticator's first step, before the cache
    step_by_step = _outcome(lambda: token_step_by_step(request))
    assert _outcome(lambda: read(request)) == step_by_step, values


def _warm_authenticator() -> BearerAuthenticator:
    """An authenticator whose L1 cache holds ``_TOKEN``, trusted; it has no introspector (a
    request that needed one would fail)."""
    cache = L1Cache(10, 60)
    cache.listening = True
    result = IntrospectionResult(active=True, token_id="t", user_id="u", public_id=_PUBLIC_ID)
    cache.put(parse_token(_TOKEN), result, cache.epoch)
    return BearerAuthenticator(None, cache)  # type: ignore[arg-type]


_WARM = _warm_authenticator()


@settings(max_examples=400, deadline=None)
@given(values=_VALUES)
@example(values=[f"Bearer {_TOKEN}"])
@example(values=[f"bEaReR {generate_token(_PUBLIC_ID)[0]}"])
@example(values=[f"Bearer {_NOT_ASCII[0]}"])
@example(values=[f"Bearer {_NOT_ASCII[1]}"])
def test_a_warm_token_is_known_by_its_text_as_by_its_parts(values: list[str]) -> None:
    """The warm token's exact text is known without reading it; whatever the value, the
    outcome is what reading it step by step and looking its parts up gives: its owner, the
    same refusal, a wrong secret for its id, or a miss (the introspector's to answer)."""
    fields = [(b"Authorization", value.encode("utf-8", "surrogateescape")) for value in values]
    request = RelayRequest("GET", b"/", fields, "198.51.100.7", 0, True, False, "a", values)
    read = _outcome(lambda: token_step_by_step(request))
    expected: object = read
    if isinstance(read, tuple) and isinstance(read[1], ParsedToken):
        found, _ = _WARM._cache.lookup(read[1])
        expected = {"hit": "t", "wrong_secret": (401, "wrong_secret"), "miss": LATER}[found]
    got = _outcome(lambda: _WARM.authenticate_now(request, RequestContext("r", None)))
    assert (got.token_id if isinstance(got, Identity) else got) == expected, values
