"""Strip: no spelling of an identity header and no hop-by-hop header gets past the gateway."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.pipeline.mutate import IdentityHeaderNames
from gateway.pipeline.strip import HOP_BY_HOP, canonical_name, strip_inbound
from tests.harness.cases import SPOOFED, SPOOFED_TOKEN_CLAIM, SPOOFED_USER_ID_SPELLINGS

PROTECTED = (*IdentityHeaderNames().all(), "X-Keygate-Internal-Secret")
PROTECTED_KEYS = {canonical_name(name) for name in PROTECTED}
SPOOFED_SETS = {
    **SPOOFED_USER_ID_SPELLINGS,
    "mixed-separators": [("X-Keygate_User-ID", SPOOFED)],
    "duplicated-spellings": [
        ("X-Keygate-User-Id", SPOOFED),
        ("x_keygate_user_id", SPOOFED),
        ("X-Keygate-User-Id", ""),
    ],
    "method-and-scope": SPOOFED_TOKEN_CLAIM,
    "internal-secret": [("X-Keygate-Internal-Secret", "guess")],
}


def strip(pairs: list[tuple[str, str]], **kwargs: bool) -> list[tuple[str, str]]:
    return list(strip_inbound(CIMultiDict(pairs), PROTECTED, **kwargs).items())


@pytest.mark.parametrize("pairs", list(SPOOFED_SETS.values()), ids=list(SPOOFED_SETS))
def test_every_spelling_of_a_protected_header_is_removed(pairs: list[tuple[str, str]]) -> None:
    """Protected names go whatever their case, separators or number of copies."""
    assert strip([*pairs, ("Accept", "*/*")]) == [("Accept", "*/*")]


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP), ids=sorted(HOP_BY_HOP))
def test_hop_by_hop_headers_are_removed(name: str) -> None:
    """Each hop-by-hop field is dropped, in lower case and in Title-Case."""
    pairs = [(name, "x"), (name.title(), "y"), ("X-Normal", "yes")]
    assert strip(pairs) == [("X-Normal", "yes")]


@pytest.mark.parametrize(
    ("connection", "gone"),
    [
        (["keep-alive, X-Private"], ["X-Private"]),
        (["  x-private ,\tX-Other  "], ["X-Private", "X-Other"]),
        (["X_PRIVATE"], ["X-Private"]),
        (["x-private"], ["X_Private"]),
        (["X-Private", "X-Other"], ["X-Private", "X-Other"]),
        ([",,X-Private,,"], ["X-Private"]),
        (["X-Keygate-User-Id"], ["X-Keygate-User-Id"]),
    ],
    ids=[
        "with-keep-alive",
        "whitespace-and-case",
        "underscore-token",
        "underscore-header",
        "two-connection-headers",
        "empty-elements",
        "names-a-protected-header",
    ],
)
def test_fields_named_in_connection_are_removed(connection: list[str], gone: list[str]) -> None:
    """Whatever Connection names stops here, however the token is spelled."""
    pairs = [*(("Connection", c) for c in connection), *((g, "1") for g in gone)]
    assert strip([*pairs, ("X-Normal", "yes")]) == [("X-Normal", "yes")]


@pytest.mark.parametrize(
    "name",
    ["X Bad", "X:Bad", "X(Bad)", "X/Bad", "", "X-Ünicode", "X-Bad\r\nX-Evil", "X@Bad"],
    ids=["space", "colon", "parens", "slash", "empty", "non-ascii", "crlf", "at-sign"],
)
def test_names_outside_rfc9110_token_chars_are_removed(name: str) -> None:
    """A field name no HTTP parser would accept is dropped rather than passed on."""
    assert strip([(name, "1"), ("X-Normal", "yes")]) == [("X-Normal", "yes")]


@pytest.mark.parametrize(
    "value", ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\x00b"], ids=["crlf", "lf", "cr", "nul"]
)
def test_values_with_line_breaks_or_nul_are_removed(value: str) -> None:
    """A value that could split into two headers on the next hop is dropped."""
    assert strip([("X-Thing", value), ("X-Normal", "yes")]) == [("X-Normal", "yes")]


def test_ordinary_headers_survive_in_order_and_spelling() -> None:
    """Everything the client may send arrives unchanged, duplicates and order included."""
    pairs = [
        ("Accept", "*/*"),
        ("x-custom", "1"),
        ("Cookie", "a=1"),
        ("X-Custom", "2"),
        ("Authorization", "Basic eDp5"),
        ("Sec-WebSocket-Key", "k"),
    ]
    assert strip(pairs) == pairs


def test_input_is_not_modified() -> None:
    """strip_inbound returns a new multidict and leaves the request's headers alone."""
    original = CIMultiDict([("X-Keygate-User-Id", SPOOFED), ("Connection", "close")])
    proxy = CIMultiDictProxy(original)
    result = strip_inbound(proxy, PROTECTED)
    assert result is not original and not result
    assert list(original.items()) == [("X-Keygate-User-Id", SPOOFED), ("Connection", "close")]


@pytest.mark.parametrize(
    ("pairs", "keep_upgrade", "expected"),
    [
        (
            [("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket"), ("X-A", "1")],
            True,
            [("Upgrade", "websocket"), ("X-A", "1"), ("Connection", "Upgrade")],
        ),
        (
            [("Connection", "Upgrade, X-Private"), ("Upgrade", "websocket"), ("X-Private", "p")],
            True,
            [("Upgrade", "websocket"), ("Connection", "Upgrade")],
        ),
        (
            [("Connection", "upgrade"), ("Upgrade", "websocket"), ("X_Keygate_User_Id", SPOOFED)],
            True,
            [("Upgrade", "websocket"), ("Connection", "Upgrade")],
        ),
        ([("Connection", "keep-alive"), ("Upgrade", "websocket")], True, []),
        ([("Connection", "Upgrade")], True, []),
        ([("Connection", "Upgrade"), ("Upgrade", "websocket")], False, []),
    ],
    ids=[
        "websocket-kept",
        "other-connection-fields-still-go",
        "identity-still-goes",
        "upgrade-not-in-connection",
        "connection-without-upgrade-header",
        "flag-off",
    ],
)
def test_keep_upgrade_keeps_only_the_upgrade_pair(
    pairs: list[tuple[str, str]], keep_upgrade: bool, expected: list[tuple[str, str]]
) -> None:
    """keep_upgrade keeps Upgrade plus a bare Connection: Upgrade, and only for a real upgrade."""
    assert strip(pairs, keep_upgrade=keep_upgrade) == expected


@st.composite
def respelled(draw: st.DrawFn, name: str) -> str:
    """``name`` with random letter case and '-'/'_' separators."""
    return "".join(
        draw(st.sampled_from("-_")) if c in "-_" else draw(st.sampled_from([c.lower(), c.upper()]))
        for c in name
    )


protected_spellings = st.sampled_from(PROTECTED).flatmap(respelled)
other_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,24}", fullmatch=True).filter(
    lambda n: canonical_name(n) not in PROTECTED_KEYS | HOP_BY_HOP
)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@given(
    spoofed=st.lists(st.tuples(protected_spellings, values), min_size=1, max_size=12),
    others=st.lists(st.tuples(other_names, values), max_size=8),
    data=st.data(),
    keep_upgrade=st.booleans(),
)
def test_no_spelling_of_a_protected_name_survives(
    spoofed: list[tuple[str, str]],
    others: list[tuple[str, str]],
    data: st.DataObject,
    keep_upgrade: bool,
) -> None:
    """For any mix of respelled, duplicated protected headers, none survive; others do."""
    pairs = data.draw(st.permutations([*spoofed, *others]))
    result = strip_inbound(CIMultiDict(pairs), PROTECTED, keep_upgrade=keep_upgrade)
    assert not [k for k in result if canonical_name(k) in PROTECTED_KEYS]
    assert list(result.items()) == [p for p in pairs if p[0] not in dict(spoofed)]
