"""Header integrity: what the upstream is told about the caller comes from the gateway only.

Hypothesis writes whole requests over a raw socket (so no client library tidies the headers
first): Authorization values built from real, revoked, tampered and unknown tokens in odd
spellings, spoofed identity headers in every case, repeated, with whitespace, with ``_`` for
``-`` and named in ``Connection``, and forwarding headers from an untrusted peer. Whatever the
mix, nothing is a bypass and nothing the client wrote reaches the upstream as trusted.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keygate_core.token_format import generate_token, parse_token
from tests.harness.cases import IDENTITY_HEADERS, PRIVATE_AND_PUBLIC_ROUTES
from tests.harness.figures import Figures
from tests.harness.stack import Stack, StartStack
from tests.harness.upstream import Received
from tests.reliability.rawhttp import exchange_sync, request_bytes

#: The deployment renames the user id header; the default name must be stripped all the same.
USER_ID_HEADER = "X-User-Id"
IDENTITY_NAMES = [
    USER_ID_HEADER,
    *IDENTITY_HEADERS,
    "X-Keygate-Internal-Secret",
    "X-Keygate-Client-Address",
]
#: What the gateway injects for a token caller (configured names), and nothing else of these.
INJECTED = {
    "x-user-id",
    "x-keygate-user-email",
    "x-keygate-token-id",
    "x-keygate-token-scope",
    "x-keygate-auth-method",
}
#: Headers only a trusted proxy may set: from anyone else they never reach the upstream.
UNTRUSTED = [
    ("Forwarded", "for=203.0.113.9;host=evil.example;proto=https"),
    ("X-Real-IP", "203.0.113.9"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Prefix", "/public"),
    ("X-Original-URL", "/private/admin"),
    ("X-Rewrite-URL", "/private/admin"),
    ("X-Original-URI", "/public/x"),
    ("X-Forwarded-Uri", "/public/x"),
    ("X-Envoy-Original-Path", "/public/x"),
]
#: Replaced by the gateway's own values.
REPLACED = [
    ("X-Forwarded-For", "203.0.113.9"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
]
SPOOF = "SPOOF"


def canonical(name: str) -> str:
    """How a CGI-style server names a header: lower case, ``_`` read as ``-``."""
    return name.lower().replace("_", "-")


@st.composite
def respelled(draw: st.DrawFn, name: str) -> str:
    """``name`` in random letter case with random ``-``/``_`` separators."""
    return "".join(
        draw(st.sampled_from("-_")) if c == "-" else draw(st.sampled_from([c.lower(), c.upper()]))
        for c in name
    )


def authorization_headers(
    valid: str, others: list[str]
) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Authorization headers: the real token plainly, or up to two odd ones built from
    ``valid``, the ``others`` (revoked, tampered, unknown) and junk."""
    tokens = st.one_of(
        st.sampled_from(
            [
                *(valid, valid, *others, valid[:-1], valid + "0"),
                *(valid.swapcase(), "kg_", "", f"{valid},{valid}", valid.replace("_", "-")),
            ]
        ),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
    )
    authorization = st.builds(
        lambda lead, scheme, sep, token, trail: f"{lead}{scheme}{sep}{token}{trail}",
        st.sampled_from(["", " ", "\t"]),
        st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Token", ""]),
        st.sampled_from([" ", "  ", "\t", "", ":"]),
        tokens,
        st.sampled_from(["", " ", "\t"]),
    )
    return st.one_of(
        # The real token as a client library sends it: the mix must not drown it.
        st.sampled_from(["Bearer", "bearer"]).map(lambda s: [("Authorization", f"{s} {valid}")]),
        st.lists(
            st.tuples(
                st.sampled_from(["Authorization", "authorization", "AUTHORIZATION"]),
                authorization,
            ),
            max_size=2,
        ),
    )


#: Identity headers in any spelling, each value carrying the SPOOF marker.
SPOOFED = st.lists(
    st.tuples(
        st.sampled_from(IDENTITY_NAMES).flatmap(respelled),
        st.builds(
            lambda a, b: f"{a}{SPOOF}{b}",
            st.sampled_from(["", " ", "\t"]),
            st.sampled_from(["", " ", "\t", "-token", ", ORGANIZATION"]),
        ),
    ),
    max_size=6,
)
#: A Connection header naming identity headers.
CONNECTION = st.lists(st.sampled_from(IDENTITY_NAMES).flatmap(respelled), max_size=3).map(
    lambda names: [("Connection", ", ".join(names))] if names else []
)
#: Forwarding headers, untrusted and replaced, in any spelling.
FORWARDING = st.lists(
    st.sampled_from(UNTRUSTED + REPLACED).flatmap(
        lambda pair: st.tuples(respelled(pair[0]), st.just(pair[1]))
    ),
    max_size=4,
)


def hostile_header_sets(
    authorization: st.SearchStrategy[list[tuple[str, str]]],
) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Authorization, spoofed, Connection and forwarding headers, mixed in any order."""
    return (
        st.tuples(authorization, SPOOFED, CONNECTION, FORWARDING)
        .map(lambda parts: [h for part in parts for h in part])
        .flatmap(st.permutations)
    )


class HeaderProbe:
    """Sends generated requests over a raw socket; checks what reached the upstream."""

    def __init__(self, stack: Stack, valid: str, user_id: str) -> None:
        assert stack.gateway.port is not None
        self.port = stack.gateway.port
        self.upstream = stack.upstream
        self.user_id = user_id
        # The scheme is case-insensitive, the token is not: its swapcase is another token.
        self.canonical_valid = re.compile(rf"[ \t]*(?i:bearer) +{re.escape(valid)}[ \t]*")
        self.counts = {
            "requests": 0,
            "forwarded": 0,
            "token": 0,
            "refused": 0,
            "spoofed_headers": 0,
        }

    def check(self, path: str, headers: list[tuple[str, str]]) -> None:
        """Send one request: never a 5xx, the real token presented once always accepted, and
        whatever is forwarded carries only the gateway's own identity and forwarding headers."""
        before = len(self.upstream.requests)
        marker = f"m{self.counts['requests']}"
        self.counts["requests"] += 1
        self.counts["spoofed_headers"] += sum(
            1 for k, _ in headers if canonical(k) in {canonical(n) for n in IDENTITY_NAMES}
        )
        sent = [("Host", "gateway"), ("X-Probe", marker), *headers, ("Connection", "close")]
        responses = exchange_sync(self.port, request_bytes("GET", path, sent))
        assert len(responses) == 1
        status = responses[0].status
        assert status < 500, (status, responses[0].body[:300])
        seen = [r for r in self.upstream.requests[before:] if r.header("X-Probe") == [marker]]
        authorizations = [v for k, v in headers if k.lower() == "authorization"]
        presented = len(authorizations) == 1 and self.canonical_valid.fullmatch(authorizations[0])
        if path != "/public/x" and presented:
            assert status == 200 and seen, "the real token, presented once, must be accepted"
        if not seen:
            self.counts["refused"] += 1
            assert path != "/public/x", "auth = none forwards everything"
            return
        self.counts["forwarded"] += 1
        self.assert_trusted_identity_only(seen[0], path, bool(presented), headers)

    def assert_trusted_identity_only(
        self, received: Received, path: str, presented: bool, headers: list[tuple[str, str]]
    ) -> None:
        """An identity only for the real token presented once; nothing the client wrote."""
        method = received.header("X-Keygate-Auth-Method")
        if path == "/private/x" or (presented and path == "/x"):
            assert method == ["token"], (method, headers)
        assert method in (["token"], ["anonymous"])
        if method == ["token"]:
            self.counts["token"] += 1
            assert presented, f"an identity without the real token presented once: {headers}"
            assert received.header(USER_ID_HEADER) == [self.user_id]
            assert received.header("X-Keygate-Token-Scope") == ["PERSONAL"]
        for name, value in received.headers:
            assert SPOOF not in value, (name, value)
        names = [canonical(name) for name, _ in received.headers]
        for key in {canonical(n) for n in IDENTITY_NAMES}:
            injected = key == "x-keygate-auth-method" or (method == ["token"] and key in INJECTED)
            assert names.count(key) == (1 if injected else 0), (key, received.headers)
        assert not [v for v in received.header("Authorization") if v.lower().startswith("bearer")]
        for name, _ in UNTRUSTED:
            assert canonical(name) not in names, (name, received.headers)
        pairs = [(canonical(k), v) for k, v in received.headers]
        for name, value in [
            ("x-forwarded-for", "127.0.0.1"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "gateway"),
        ]:
            assert [v for k, v in pairs if k == name] == [value], (name, received.headers)


async def test_hostile_header_sets_never_bypass_or_pass_as_trusted(
    start_stack: StartStack, tmp_path: Path, figures: Figures
) -> None:
    """600 generated header sets: no 5xx, no bypass, nothing spoofed reaches the upstream."""
    # An identity reaches the upstream only for the one real token presented once; spoofed
    # identity and untrusted forwarding headers never do.
    routes_file = tmp_path / "routes.toml"
    routes_file.write_text(PRIVATE_AND_PUBLIC_ROUTES, encoding="utf-8")
    stack = await start_stack(
        KEYGATE_ROUTES_FILE=str(routes_file),
        KEYGATE_IDENTITY_HEADERS=f"user_id={USER_ID_HEADER}",
        KEYGATE_RATE_LIMIT_PER_MINUTE="100000",
    )
    ki = stack.introspector
    alice = await ki.user("alice@example.com")
    valid = await stack.token_for(alice, name="valid")
    revoked = await ki.create_ok(alice, name="revoked")
    assert (await ki.revoke(alice, revoked["id"])).status == 204
    tampered = generate_token(parse_token(valid).public_id)[0]
    unknown = generate_token()[0]
    # Warm: the valid token must keep working once wrong secrets have throttled its id.
    warm = await stack.gateway.get("/x", headers={"Authorization": f"Bearer {valid}"})
    assert warm.status == 200
    probe = HeaderProbe(stack, valid, str(alice.id))
    authorization = authorization_headers(valid, [revoked["token"], tampered, unknown])

    @settings(
        max_examples=600,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        path=st.sampled_from(["/x", "/private/x", "/public/x"]),
        headers=hostile_header_sets(authorization),
    )
    def check(path: str, headers: list[tuple[str, str]]) -> None:
        probe.check(path, headers)

    await asyncio.to_thread(check)
    figures.update(probe.counts)
    assert probe.counts["token"] > 30 and probe.counts["refused"] > 30, probe.counts
