"""Mutate: identity headers are well-formed whatever the identity holds; the bearer stays home."""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.identity import AuthMethod, Identity
from gateway.pipeline.mutate import IdentityHeaderNames, drop_bearer, header_value, identity_headers
from tests.harness.cases import IDENTITY_HEADERS

TOKEN_IDENTITY = Identity(
    user_id="u-1",
    email="alice@example.com",
    workspace_id="w-1",
    token_id="t-1",
    token_scope="PERSONAL",
    auth_method=AuthMethod.TOKEN,
    rate_limit=100,
)
SESSION_IDENTITY = Identity(
    user_id="u-2",
    email="bob@example.com",
    workspace_id=None,
    token_id=None,
    token_scope=None,
    auth_method=AuthMethod.SESSION,
)


def test_default_names_are_the_documented_ones() -> None:
    """all() lists the seven default names in field order."""
    assert IdentityHeaderNames().all() == IDENTITY_HEADERS


def test_names_are_frozen() -> None:
    """A configured set of names cannot be changed afterwards."""
    names = IdentityHeaderNames()
    with pytest.raises(dataclasses.FrozenInstanceError):
        names.user_id = "X-Other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"user_id": "X User"}, "user_id: 'X User' is not a valid header name"),
        ({"email": ""}, "email: '' is not a valid header name"),
        ({"email": "Cookie"}, "already means something"),
        ({"token_id": "authorization"}, "already means something"),
        ({"token_scope": "Connection"}, "already means something"),
        ({"workspace_id": "X_Forwarded_For"}, "already means something"),
        ({"email": "x-keygate-user-id"}, "same header as user_id"),
        ({"email": "X_Keygate_User_Id"}, "same header as user_id"),
    ],
    ids=[
        "space",
        "empty",
        "cookie",
        "authorization",
        "hop-by-hop",
        "forwarded-underscore",
        "duplicate-case",
        "duplicate-underscore",
    ],
)
def test_bad_names_are_refused_when_configured(overrides: dict[str, str], fragment: str) -> None:
    """A name set that would break requests fails when built, naming the field."""
    with pytest.raises(ValueError, match=fragment):
        IdentityHeaderNames(**overrides)


@pytest.mark.parametrize(
    ("identity", "names", "expected"),
    [
        (
            TOKEN_IDENTITY,
            IdentityHeaderNames(),
            [
                ("X-Keygate-User-Id", "u-1"),
                ("X-Keygate-User-Email", "alice@example.com"),
                ("X-Keygate-Workspace-Id", "w-1"),
                ("X-Keygate-Token-Id", "t-1"),
                ("X-Keygate-Token-Scope", "PERSONAL"),
                ("X-Keygate-Auth-Method", "token"),
            ],
        ),
        (
            SESSION_IDENTITY,
            IdentityHeaderNames(),
            [
                ("X-Keygate-User-Id", "u-2"),
                ("X-Keygate-User-Email", "bob@example.com"),
                ("X-Keygate-Auth-Method", "session"),
            ],
        ),
        (Identity.anonymous(), IdentityHeaderNames(), [("X-Keygate-Auth-Method", "anonymous")]),
        (
            dataclasses.replace(SESSION_IDENTITY, email=""),
            IdentityHeaderNames(user_id="X-User-Id", auth_method="X-Auth"),
            [("X-User-Id", "u-2"), ("X-Auth", "session")],
        ),
    ],
    ids=["token", "session", "anonymous", "renamed-and-empty-email"],
)
def test_identity_headers_carry_the_known_facts(
    identity: Identity, names: IdentityHeaderNames, expected: list[tuple[str, str]]
) -> None:
    """Present facts are sent under the configured names; absent ones are omitted."""
    assert identity_headers(identity, names) == expected


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        ("alice@example.com", "alice@example.com"),
        ("u-1\r\nX-Keygate-Auth-Method: token", "u-1%0D%0AX-Keygate-Auth-Method:%20token"),
        ("a\x00b", "a%00b"),
        ("a\tb\x7fc", "a%09b%7Fc"),
        ("josé@example.com", "jos%C3%A9@example.com"),
        ("100%", "100%25"),
        (" padded ", "%20padded%20"),
        ("a\u2028b", "a%E2%80%A8b"),
        ("\ud800", "%ED%A0%80"),
    ],
    ids=[
        "plain",
        "header-injection",
        "nul",
        "tab-and-del",
        "non-ascii",
        "percent",
        "spaces",
        "unicode-line-separator",
        "lone-surrogate",
    ],
)
def test_unsafe_characters_are_percent_encoded(raw: str, sent: str) -> None:
    """Controls, spaces, '%' and non-ASCII are sent as UTF-8 percent escapes."""
    identity = dataclasses.replace(Identity.anonymous(), email=raw)
    assert identity_headers(identity, IdentityHeaderNames())[0] == ("X-Keygate-User-Email", sent)


@given(st.text())
def test_identity_header_values_are_always_visible_ascii(text: str) -> None:
    """For any text in any field, every emitted value is visible ASCII without CR, LF or NUL."""
    identity = Identity(text, text, text, text, text, AuthMethod.TOKEN)
    for _, value in identity_headers(identity, IdentityHeaderNames()):
        assert value.isascii() and "\r" not in value and "\n" not in value and "\0" not in value
        assert all(0x21 <= ord(c) <= 0x7E for c in value)


@given(st.text(st.characters(codec=None, exclude_categories=())))
def test_header_values_decode_back_to_the_original(text: str) -> None:
    """Percent-decoding a sent value restores the original exactly, surrogates included."""
    assert unquote(header_value(text), errors="surrogatepass") == text


@pytest.mark.parametrize(
    ("pairs", "forward_bearer", "expected"),
    [
        ([("Authorization", "Bearer kg_x")], False, []),
        ([("authorization", "bearer kg_x")], False, []),
        ([("Authorization", "  BEARER   kg_x")], False, []),
        ([("Authorization", "Basic eDp5")], False, [("Authorization", "Basic eDp5")]),
        (
            [("Authorization", "Bearer kg_x"), ("Authorization", "Basic eDp5")],
            False,
            [("Authorization", "Basic eDp5")],
        ),
        ([("Authorization", "Bearer kg_x")], True, [("Authorization", "Bearer kg_x")]),
        ([("X-Other", "Bearer kg_x")], False, [("X-Other", "Bearer kg_x")]),
    ],
    ids=[
        "bearer",
        "lower-case",
        "padded-upper",
        "basic-kept",
        "only-the-bearer-value",
        "forwarding-configured",
        "other-header-untouched",
    ],
)
def test_drop_bearer_removes_only_bearer_credentials(
    pairs: list[tuple[str, str]], forward_bearer: bool, expected: list[tuple[str, str]]
) -> None:
    """The bearer token is not forwarded unless configured; other schemes always are."""
    headers = CIMultiDict(pairs)
    result = drop_bearer(headers, forward_bearer=forward_bearer)
    assert list(result.items()) == expected
    assert result is not headers and list(headers.items()) == pairs
