"""Admin UI CSRF defences: synchronizer and double-submit tokens, and the Origin rule table."""

from __future__ import annotations

import pytest

from admin_ui import csrf

SECRET = "s" * 40


def test_key_is_derived_from_the_secret_and_never_is_the_secret() -> None:
    """The key is deterministic per secret, differs between secrets and is not the secret."""
    key = csrf.derive_key(SECRET)
    assert key == csrf.derive_key(SECRET)
    assert key != csrf.derive_key("t" * 40)
    assert SECRET.encode() not in key
    assert len(key) == 32


def test_session_token_is_hex_hmac_bound_to_the_session() -> None:
    """The token is 64 hex characters and changes with the session id."""
    key = csrf.derive_key(SECRET)
    token = csrf.session_token(key, "session-a")
    assert len(token) == 64 and int(token, 16) >= 0
    assert token == csrf.session_token(key, "session-a")
    assert token != csrf.session_token(key, "session-b")


@pytest.mark.parametrize(
    ("session_id", "presented_for", "other_key", "ok"),
    [
        ("session-a", "session-a", False, True),
        ("session-a", "session-b", False, False),
        ("session-a", "session-a", True, False),
        ("", "", False, False),
    ],
    ids=["genuine", "other-session", "other-secret", "no-session"],
)
def test_session_token_verification(
    session_id: str, presented_for: str, other_key: bool, ok: bool
) -> None:
    """Only the token made with this deployment's key for this session verifies."""
    key = csrf.derive_key(SECRET)
    made_with = csrf.derive_key("t" * 40) if other_key else key
    presented = csrf.session_token(made_with, presented_for) if presented_for else ""
    assert csrf.verify_session_token(key, session_id, presented) is ok


@pytest.mark.parametrize("presented", ["", "0" * 64, "not hex at all", "é" * 64])
def test_session_token_rejects_garbage(presented: str) -> None:
    """Empty, wrong and non-ASCII tokens are refused without raising."""
    key = csrf.derive_key(SECRET)
    assert csrf.verify_session_token(key, "session-a", presented) is False


def test_login_tokens_are_random_and_match_only_their_cookie() -> None:
    """Double-submit: a fresh value each time, accepted only when field and cookie agree."""
    first, second = csrf.new_login_token(), csrf.new_login_token()
    assert first != second and len(first) >= 40
    assert csrf.verify_login_token(first, first) is True
    assert csrf.verify_login_token(first, second) is False
    assert csrf.verify_login_token("", "") is False
    assert csrf.verify_login_token(first, "") is False


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "keys.example.com"},
            "https://keys.example.com",
        ),
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "Keys.Example.com:443"},
            "https://keys.example.com",
        ),
        (
            {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "127.0.0.1:8080"},
            "http://127.0.0.1:8080",
        ),
        (
            {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "a.example, b.example"},
            "https://a.example",
        ),
        ({}, "http://ui.internal:8082"),
    ],
    ids=["forwarded", "default-port-dropped", "explicit-port", "first-of-list", "direct"],
)
def test_own_origin_comes_from_the_gateway_headers(headers: dict[str, str], expected: str) -> None:
    """The request's origin is X-Forwarded-Proto + X-Forwarded-Host, else the direct request."""
    assert csrf.own_origin(headers, "http", "ui.internal:8082") == expected


def test_own_origin_is_https_when_configured_whatever_the_headers_say() -> None:
    """KEYGATE_PUBLIC_HTTPS: TLS ends before the gateway, which reports http; the origin is
    still https."""
    headers = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "keys.example.com"}
    assert csrf.own_origin(headers, "http", "ui", https=True) == "https://keys.example.com"


ORIGIN = "https://keys.example.com"


@pytest.mark.parametrize(
    ("headers", "refusal"),
    [
        ({}, None),
        ({"Origin": ORIGIN}, None),
        ({"Origin": "https://KEYS.example.com:443"}, None),
        ({"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}, None),
        ({"Sec-Fetch-Site": "same-site"}, None),
        ({"Sec-Fetch-Site": "none"}, None),
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, None),
        ({"Origin": "null"}, None),
        ({"Origin": "https://evil.example"}, "origin_mismatch"),
        ({"Origin": "http://keys.example.com"}, "origin_mismatch"),
        ({"Origin": "https://keys.example.com:8443"}, "origin_mismatch"),
        ({"Origin": ""}, "origin_mismatch"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross_site_fetch"),
        ({"Origin": ORIGIN, "Sec-Fetch-Site": "Cross-Site"}, "cross_site_fetch"),
        ({"Origin": "null", "Sec-Fetch-Site": "same-site"}, "null_origin_not_same_origin"),
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, "cross_site_fetch"),
    ],
    ids=[
        "no-headers",
        "same-origin",
        "same-origin-spelled-differently",
        "same-origin-with-fetch-metadata",
        "same-site-fetch",
        "user-initiated",
        "null-origin-from-no-referrer-page",
        "null-origin-without-fetch-metadata",
        "foreign-origin",
        "other-scheme",
        "other-port",
        "empty-origin",
        "cross-site-fetch",
        "cross-site-any-case",
        "null-origin-same-site",
        "null-origin-cross-site",
    ],
)
def test_origin_rule_table(headers: dict[str, str], refusal: str | None) -> None:
    """Each Origin / Sec-Fetch-Site combination is accepted or refused with a fixed reason."""
    if refusal is None:
        csrf.check_origin(headers, ORIGIN)
    else:
        with pytest.raises(csrf.CsrfRejected) as caught:
            csrf.check_origin(headers, ORIGIN)
        assert caught.value.reason == refusal
