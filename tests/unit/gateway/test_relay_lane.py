"""The relay's lane builds the same upstream head as strip and mutate, or leaves it to them.

Every case is a real request head read by the relay's parser; the stages' head is what
``strip_inbound``, ``Mutator.for_upstream`` and ``request_head`` make of it, as the relay does
for a request the lane declines. The lane must give exactly those bytes whenever it answers.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.forwarded import Network
from gateway.identity import AuthMethod, Identity, RequestContext
from gateway.pipeline.authz import DEFAULT_RULE, INTROSPECTOR, RouteRule
from gateway.pipeline.mutate import SERVICE_IDENTITY, IdentityHeaderNames, Mutator
from gateway.pipeline.strip import (
    GATEWAY_WRITTEN,
    UNTRUSTED_FORWARDING,
    protected_headers,
    strip_inbound,
)
from gateway.relay.heads import RelayRequest, read_request, request_head
from gateway.relay.lane import Lane

UPSTREAM_HOST = "app.internal:8000"
PEER = "198.51.100.7"
TOKEN = Identity(
    user_id="u-1",
    email="zoë@example.com",
    workspace_id="w-1",
    token_id="t-1",
    token_scope="WORKSPACE",
    auth_method=AuthMethod.TOKEN,
    rate_limit=600,
    external_id="acct 42",
)
IDENTITIES = [Identity.anonymous(), TOKEN]
CUSTOM_NAMES = IdentityHeaderNames(user_id="X-User", email="X_Mail")


def _stripped(names: IdentityHeaderNames) -> tuple[str, ...]:
    return (
        *protected_headers(names, SERVICE_IDENTITY),
        *GATEWAY_WRITTEN,
        *UNTRUSTED_FORWARDING,
    )


def _lane(names: IdentityHeaderNames, forward_bearer: bool, trusted: tuple[Network, ...]) -> Lane:
    return Lane(_stripped(names), names, forward_bearer=forward_bearer, trusted_proxies=trusted)


def _stages(
    request: RelayRequest,
    identity: Identity,
    names: IdentityHeaderNames,
    forward_bearer: bool,
) -> bytes:
    mutator = Mutator(names, "secret", forward_bearer, (), 600)
    headers = strip_inbound(request.headers, _stripped(names))
    ctx = RequestContext("rid-1", request.remote)
    headers = mutator.for_upstream(request, headers, DEFAULT_RULE.upstream, identity, ctx)
    return request_head(request.method, "/base" + request.raw_path, UPSTREAM_HOST, headers)


def _lane_head(
    request: RelayRequest, identity: Identity, lane: Lane, rule: RouteRule = DEFAULT_RULE
) -> bytes | None:
    """The lane's head, or ``None`` where the relay leaves the request to the stages (what
    ``Exchange.start`` decides: a trusted peer, a rule the lane does not take, or field
    lines the lane did not collect)."""
    trusted, _ = lane.peer(request.remote)
    fields = request.lane_lines
    if trusted or not lane.takes(rule) or fields is None:
        return None
    first = (request.method.encode(), b"/base" + request.target, UPSTREAM_HOST.encode())
    forwarded = lane.forwarded(request.remote, request.host)
    return lane.head(first, fields, forwarded, "rid-1", lane.identity_lines(identity))


def _request(
    lane: Lane, *fields: str, method: str = "GET", target: str = "/orders?id=7"
) -> RelayRequest:
    """The request read as the relay reads it, with ``lane``'s field names."""
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n"
    request = read_request(head.encode("utf-8", "surrogateescape"), PEER, lane)
    assert request is not None, head
    return request


TAKEN = [
    pytest.param(["Host: shop.example"], id="host-only"),
    pytest.param(["Host: a", "Accept: */*", "User-Agent: curl/8"], id="plain"),
    pytest.param(["Host: a", "Authorization: Bearer kg_x"], id="bearer"),
    pytest.param(["Host: a", "authorization:   bearer kg_x"], id="bearer-lower-padded"),
    pytest.param(["Host: a", "Authorization: Basic dTpw"], id="basic-kept"),
    pytest.param(["Host: a", "Authorization: Bearer x", "AUTHORIZATION: Basic y"], id="two-auth"),
    pytest.param(["Host: a", "X-Keygate-User-Id: admin"], id="spoofed-identity"),
    pytest.param(["Host: a", "x_keygate_user_email: e@x"], id="spoofed-underscore"),
    pytest.param(["Host: a", "X-User: someone", "X_Mail: m"], id="spoofed-custom-names"),
    pytest.param(["Host: a", "X-Forwarded-Host: evil", "X-Real-IP: 1.2.3.4"], id="forwarding"),
    pytest.param(["Host: a", "Forwarded: for=1.2.3.4", "X-Request-Id: mine"], id="forwarded"),
    pytest.param(["Host: a", "Keep-Alive: 5", "TE: trailers", "Proxy-Connection: x"], id="hop"),
    pytest.param(["Host: a", "Cookie: theme=dark; lang=en"], id="app-cookie"),
    pytest.param(["Host: a", "Cookie: kg_session=s; theme=dark"], id="keygate-cookie"),
    pytest.param(["Host: a", "Cookie: theme=kg_blue"], id="cookie-mentioning-kg"),
    pytest.param(["Host: a", "Connection: keep-alive"], id="connection"),
    pytest.param(["Host: a", "Connection: close, X-Trace", "X-Trace: 1"], id="connection-names"),
    pytest.param(["Host: a", "X-Forwarded-For: 1.2.3.4"], id="x-forwarded-for"),
    pytest.param(["Host: a", "X-Note: café", "X-Raw: \udcff\udcfe"], id="non-ascii-values"),
    pytest.param(["Host: a", "X-Blank:", "X-Trailing: v  "], id="blank-and-trailing"),
    pytest.param(["Host: a", "Content-Length: 3", "Content-Type: text/plain"], id="body"),
    pytest.param(["Host: a", "X-Dup: 1", "x-dup: 2", "X_Dup: 3"], id="duplicates"),
]


@pytest.mark.parametrize("fields", TAKEN)
@pytest.mark.parametrize("identity", IDENTITIES, ids=["anonymous", "token"])
@pytest.mark.parametrize("names", [IdentityHeaderNames(), CUSTOM_NAMES], ids=["default", "custom"])
@pytest.mark.parametrize("forward_bearer", [False, True], ids=["drop-bearer", "forward-bearer"])
def test_the_lane_builds_the_stages_head_or_declines(
    fields: list[str], identity: Identity, names: IdentityHeaderNames, forward_bearer: bool
) -> None:
    """The lane's head is byte for byte the stages' head whenever the lane answers."""
    lane = _lane(names, forward_bearer, ())
    request = _request(lane, *fields)
    head = _lane_head(request, identity, lane)
    if head is not None:
        assert head == _stages(request, identity, names, forward_bearer)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(["Host: a", "Cookie: kg_session=s"], id="keygate-cookie"),
        pytest.param(["Host: a", "Connection: keep-alive"], id="connection"),
        pytest.param(["Host: a", "X-Forwarded-For: 1.2.3.4"], id="x-forwarded-for"),
    ],
)
def test_fields_the_stages_must_see_are_left_to_them(fields: list[str]) -> None:
    """A Connection field, a keygate cookie and a stranger's X-Forwarded-For take the stages."""
    lane = _lane(IdentityHeaderNames(), False, ())
    assert _lane_head(_request(lane, *fields), TOKEN, lane) is None


def test_plain_requests_take_the_lane() -> None:
    """The common API call is the lane's: otherwise it would be no use."""
    lane = _lane(IdentityHeaderNames(), False, ())
    request = _request(lane, "Host: a", "Authorization: Bearer kg_x", "Accept: */*", "Cookie: a=b")
    assert _lane_head(request, TOKEN, lane) is not None


def test_trusted_proxies_keygate_services_and_workspace_headers_take_the_stages() -> None:
    """Whose forwarding headers count, and what keygate's services and workspace rules are
    told, is decided by the stages."""
    names = IdentityHeaderNames()
    trusting = _lane(names, False, (ipaddress.ip_network("198.51.100.0/24"),))
    assert trusting.peer(PEER) == (True, None)
    assert _lane_head(_request(trusting, "Host: a", "Accept: */*"), TOKEN, trusting) is None
    lane = _lane(names, False, (ipaddress.ip_network("10.0.0.0/8"),))
    request = _request(lane, "Host: a", "Accept: */*")
    assert lane.peer(PEER) == (False, PEER)  # trusts others, not this peer
    assert _lane_head(request, TOKEN, lane) is not None
    assert _lane_head(request, TOKEN, lane, RouteRule("/api", upstream=INTROSPECTOR)) is None
    assert _lane_head(request, TOKEN, lane, RouteRule("/w", workspace_header="X-Workspace")) is None


_NAME_POOL = [
    "Accept",
    "Authorization",
    "Cookie",
    "Connection",
    "Content-Type",
    "Forwarded",
    "Host",
    "Keep-Alive",
    "TE",
    "X-Custom",
    "x_custom",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Keygate-Auth-Method",
    "x-keygate-token-id",
    "X_Keygate_User_Id",
    "X-Request-Id",
    "X-User",
    "X_Mail",
]
_VALUE = (
    st.lists(
        st.sampled_from([*"abc XYZ019=;,.-_", "kg_", "bearer ", "Basic ", "é", "\udcff"]),
        max_size=6,
    )
    .map("".join)
    .map(lambda v: v.strip(" "))
)


@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(st.tuples(st.sampled_from(_NAME_POOL), _VALUE), max_size=8),
    identity=st.sampled_from(IDENTITIES),
    names=st.sampled_from([IdentityHeaderNames(), CUSTOM_NAMES]),
    forward_bearer=st.booleans(),
)
def test_any_mix_of_fields_gives_the_same_head(
    fields: list[tuple[str, str]],
    identity: Identity,
    names: IdentityHeaderNames,
    forward_bearer: bool,
) -> None:
    """Random mixes of the names that matter, with values that look like what matters."""
    hosts = sum(1 for name, _ in fields if name.lower() == "host")
    lines = [f"{name}: {value}" for name, value in fields] + ([] if hosts else ["Host: h"])
    if hosts > 1:
        return  # the relay leaves two Host fields to aiohttp (a 400)
    head = "GET /x HTTP/1.1\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n"
    lane = _lane(names, forward_bearer, ())
    request = read_request(head.encode("utf-8", "surrogateescape"), PEER, lane)
    if request is None:
        return  # for aiohttp: not the relay's
    built = _lane_head(request, identity, lane)
    if built is not None:
        assert built == _stages(request, identity, names, forward_bearer)
