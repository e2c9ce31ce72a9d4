"""The `upstream` session authenticator: the app's own session-check URL vouches for cookies."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from keygate_core.token_format import generate_token
from tests.harness.upstream_sessions import Sessions, StartSessions


@pytest.mark.parametrize("path", ["/dashboard", "/private/report"], ids=["optional", "required"])
async def test_valid_cookie_becomes_a_session_identity(sessions: Sessions, path: str) -> None:
    """sid=valid-<id>: the upstream gets the user's identity as a session, cookie untouched."""
    user_id = str(uuid.uuid4())
    cookie = f"sid=valid-{user_id}; theme=dark"
    response = await sessions.get(path, Cookie=cookie)
    assert response.status == 200
    seen = sessions.stack.upstream.last
    assert seen.header("X-Keygate-User-Id") == [user_id]
    assert seen.header("X-Keygate-User-Email") == ["cookie@example.com"]
    assert seen.header("X-Keygate-Auth-Method") == ["session"]
    assert seen.header("X-Keygate-Token-Id") == []
    assert seen.header("Cookie") == [cookie]
    check = sessions.checks.last
    assert check.header("Cookie") == [cookie]
    assert check.header("X-Request-Id") == seen.header("X-Request-Id")


@pytest.mark.parametrize(
    "cookie",
    ["sid=expired-123", "theme=dark", "sid=", "sid=VALID-123"],
    ids=["unknown-session", "no-session-cookie", "empty-sid", "wrong-case"],
)
async def test_invalid_cookie_is_anonymous_and_still_forwarded(
    sessions: Sessions, cookie: str
) -> None:
    """A cookie the app does not vouch for: anonymous, forwarded with the cookie intact."""
    response = await sessions.get("/dashboard", Cookie=cookie)
    assert response.status == 200
    seen = sessions.stack.upstream.last
    assert seen.header("X-Keygate-Auth-Method") == ["anonymous"]
    assert seen.header("X-Keygate-User-Id") == []
    assert seen.header("Cookie") == [cookie]
    assert sessions.check_count == 1


async def test_invalid_cookie_on_a_required_route_is_401(sessions: Sessions) -> None:
    """auth=required with a cookie the app refuses: 401, nothing forwarded."""
    response = await sessions.get("/private/report", Cookie="sid=expired-123")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="keygate"'
    assert sessions.stack.upstream.requests == []


async def test_no_cookie_never_calls_the_session_check(sessions: Sessions) -> None:
    """Without a Cookie header the authenticator is not responsible: zero session checks."""
    assert (await sessions.get("/dashboard")).status == 200
    assert sessions.stack.upstream.last.header("X-Keygate-Auth-Method") == ["anonymous"]
    assert (await sessions.get("/private/report")).status == 401
    assert sessions.check_count == 0


@pytest.mark.parametrize(
    ("cache_seconds", "cookies", "checks"),
    [
        ("5", ["sid=valid-a", "sid=valid-a"], 1),
        ("5", ["sid=expired", "sid=expired"], 1),
        ("5", ["sid=valid-a", "sid=valid-b", "sid=valid-a"], 2),
        ("0", ["sid=valid-a", "sid=valid-a"], 2),
    ],
    ids=["same-cookie-cached", "refusal-cached", "per-cookie", "caching-off"],
)
async def test_answers_are_cached_per_cookie(
    start_sessions: StartSessions, cache_seconds: str, cookies: list[str], checks: int
) -> None:
    """Within KEYGATE_SESSION_CACHE_SECONDS one cookie costs one session check."""
    sessions = await start_sessions(KEYGATE_SESSION_CACHE_SECONDS=cache_seconds)
    for cookie in cookies:
        assert (await sessions.get("/dashboard", Cookie=cookie)).status == 200
    assert sessions.check_count == checks
    users = [r.header("X-Keygate-User-Id") for r in sessions.stack.upstream.requests]
    assert users == [[c.removeprefix("sid=valid-")] if "valid" in c else [] for c in cookies]


async def test_cache_is_keyed_by_a_digest_not_the_cookie(sessions: Sessions) -> None:
    """The session cache holds 32-byte SHA-256 digests; the cookie itself is never a key."""
    cookies = [f"sid=valid-{uuid.uuid4()}" for _ in range(3)]
    for cookie in cookies:
        await sessions.get("/dashboard", Cookie=cookie)
    keys = set(sessions.authenticator()._cache)
    assert keys == {hashlib.sha256(c.encode()).digest() for c in cookies}
    assert all(len(k) == 32 for k in keys)


async def test_bearer_token_wins_over_a_session_cookie(sessions: Sessions) -> None:
    """Token and valid cookie of someone else: the token decides and no session check runs."""
    alice = await sessions.stack.introspector.user("alice@example.com")
    token = await sessions.stack.token_for(alice)
    response = await sessions.get(
        "/private/report",
        Authorization=f"Bearer {token}",
        Cookie=f"sid=valid-{uuid.uuid4()}",
    )
    assert response.status == 200
    seen = sessions.stack.upstream.last
    assert seen.header("X-Keygate-User-Id") == [str(alice.id)]
    assert seen.header("X-Keygate-Auth-Method") == ["token"]
    assert sessions.check_count == 0


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {generate_token()[0]}", "Bearer kg_short"],
    ids=["unknown-token", "malformed-token"],
)
@pytest.mark.parametrize("path", ["/dashboard", "/private/report"], ids=["optional", "required"])
async def test_bad_bearer_with_valid_cookie_is_401(
    sessions: Sessions, authorization: str, path: str
) -> None:
    """A bad bearer never falls through to a valid session: 401, no check, nothing forwarded."""
    response = await sessions.get(
        path, Authorization=authorization, Cookie=f"sid=valid-{uuid.uuid4()}"
    )
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert sessions.stack.upstream.requests == []
    assert sessions.check_count == 0


async def test_session_check_down_is_503_on_a_required_route(
    start_sessions: StartSessions, refused_url: str
) -> None:
    """Session service unreachable: a cookie on an auth=required route is 503 + Retry-After."""
    sessions = await start_sessions(check_url=refused_url)
    response = await sessions.get("/private/report", Cookie="sid=valid-123")
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert (await response.json())["reason"] == "auth_unavailable"
    assert sessions.stack.upstream.requests == []


async def test_session_check_down_leaves_tokens_and_cookieless_requests_alone(
    start_sessions: StartSessions, refused_url: str
) -> None:
    """Session service unreachable: bearer requests still pass, cookieless ones are not 503."""
    sessions = await start_sessions(check_url=refused_url)
    alice = await sessions.stack.introspector.user("alice@example.com")
    token = await sessions.stack.token_for(alice)
    authorized = await sessions.get(
        "/private/report", Authorization=f"Bearer {token}", Cookie="sid=valid-123"
    )
    assert authorized.status == 200
    assert (await sessions.get("/private/report")).status == 401
    assert (await sessions.get("/dashboard")).status == 200


async def test_session_check_down_degrades_to_passthrough_on_optional_routes(
    start_sessions: StartSessions, refused_url: str
) -> None:
    """Session check unreachable: on an optional route the cookie reaches the app anonymously."""
    # So the app's own sessions keep working while its session service is down.
    sessions = await start_sessions(check_url=refused_url)
    response = await sessions.get("/dashboard", Cookie="theme=dark; sid=valid-123")
    assert response.status == 200
    seen = sessions.stack.upstream.last
    assert seen.header("Cookie") == ["theme=dark; sid=valid-123"]
    assert seen.header("X-Keygate-Auth-Method") == ["anonymous"]
