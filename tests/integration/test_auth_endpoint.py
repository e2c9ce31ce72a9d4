"""``/_keygate/auth`` asked directly, as a forward-auth proxy would: identity headers on 200,
keygate's refusals otherwise, decided on the original path the proxy reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from keygate_core.token_format import generate_token
from tests.harness.cases import PRIVATE_AND_ORGANIZATION_ROUTES, SPOOFED
from tests.harness.stack import API, Stack, StartStack

AUTH = "/_keygate/auth"
REALM = 'Bearer realm="keygate"'
TOKEN_CHALLENGE = f'{REALM}, error="invalid_token"'


async def test_auth_endpoint_answers_200_with_identity(stack: Stack) -> None:
    """A valid token: 200, every identity fact and the rate-limit headers, nothing forwarded."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await stack.gateway.get(
        AUTH, headers={"Authorization": f"Bearer {token}", "X-Original-URI": "/orders?page=2"}
    )
    assert response.status == 200, await response.text()
    assert response.headers["X-Keygate-User-Id"] == str(alice.id)
    assert response.headers["X-Keygate-User-Email"] == "alice@example.com"
    assert response.headers["X-Keygate-Token-Scope"] == "PERSONAL"
    assert response.headers["X-Keygate-Auth-Method"] == "token"
    assert response.headers["X-Keygate-Token-Id"]
    assert response.headers["X-RateLimit-Remaining"] == "599"
    assert response.headers["X-Request-Id"]
    assert token not in repr(response.headers)
    assert stack.upstream.requests == []


@pytest.mark.parametrize(
    ("headers", "status", "challenge"),
    [
        ({"X-Original-URI": "/"}, 200, None),
        ({"X-Original-URI": "/dashboard", "Cookie": "sid=abc"}, 200, None),
        ({"X-Envoy-Original-Path": "/dashboard"}, 200, None),
        ({"X-Original-URI": f"{API}/whoami"}, 401, REALM),
        ({"X-Forwarded-Uri": f"{API}/whoami"}, 401, REALM),
        ({"X-Envoy-Original-Path": f"{API}/whoami"}, 401, REALM),
        ({"X-Original-URI": "/API/Platform/Internal/whoami"}, 401, REALM),
        (
            {"X-Original-URI": "/", "Authorization": f"Bearer {generate_token()[0]}"},
            401,
            TOKEN_CHALLENGE,
        ),
        (
            {"X-Original-URI": "/", "Authorization": "Bearer a b"},
            400,
            f'{REALM}, error="invalid_request"',
        ),
        ({"X-Original-URI": f"{API}%2e%2e/x"}, 400, None),
        ({"X-Original-URI": "/dashboard;x=1"}, 400, None),
        ({}, 400, None),
    ],
    ids=[
        "no-token-optional",
        "cookie-optional",
        "envoy-optional",
        "no-token-required-nginx",
        "no-token-required-traefik",
        "no-token-required-envoy",
        "no-token-required-other-case",
        "bad-token",
        "malformed-bearer",
        "ambiguous-path",
        "path-parameter",
        "no-path-header",
    ],
)
async def test_auth_endpoint_decisions(
    stack: Stack, headers: dict[str, str], status: int, challenge: str | None
) -> None:
    """Each request shape gets its decision; only 200 carries identity, refusals a challenge."""
    response = await stack.gateway.get(AUTH, headers=headers)
    assert response.status == status, await response.text()
    if status == 200:
        assert response.headers["X-Keygate-Auth-Method"] == "anonymous"
        assert "X-Keygate-User-Id" not in response.headers
    else:
        assert "X-Keygate-Auth-Method" not in response.headers
        assert response.content_type == "application/problem+json"
    assert response.headers.get("WWW-Authenticate") == challenge
    assert stack.upstream.requests == []


async def test_auth_endpoint_never_echoes_client_identity(stack: Stack) -> None:
    """Identity headers a client sends to /_keygate/auth are not vouched for in the answer."""
    response = await stack.gateway.get(
        AUTH,
        headers={
            "X-Original-URI": "/",
            "X-Keygate-User-Id": SPOOFED,
            "X-Keygate-Auth-Method": "token",
        },
    )
    assert response.status == 200
    assert "X-Keygate-User-Id" not in response.headers
    assert response.headers["X-Keygate-Auth-Method"] == "anonymous"


@pytest.mark.parametrize(
    "uri",
    [
        "/%70rivate/report",
        "/api/platform/%69nternal/whoami",
        "/PRIVATE/report",
        "/Private",
        "/%50rivate/report",
    ],
    ids=["file-rule", "api-rule", "upper-case", "bare-prefix-mixed-case", "encoded-upper-case"],
)
async def test_auth_endpoint_decides_on_the_decoded_path(
    start_stack: StartStack, tmp_path: Path, uri: str
) -> None:
    """A percent-encoded, case-changed or bare spelling of a protected path gets that path's
    policy (401), as a proxied request would."""
    routes = tmp_path / "routes.toml"
    routes.write_text(PRIVATE_AND_ORGANIZATION_ROUTES)
    stack = await start_stack(KEYGATE_ROUTES_FILE=str(routes))
    response = await stack.gateway.get(AUTH, headers={"X-Original-URI": uri})
    assert response.status == 401


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Original-URI", "/public/"), ("X-Forwarded-Uri", "/private/report")],
        [("X-Forwarded-Uri", "/public/"), ("X-Forwarded-Uri", "/private/report")],
    ],
    ids=["client-original-vs-proxy-forwarded", "repeated"],
)
async def test_auth_endpoint_refuses_conflicting_original_paths(
    start_stack: StartStack, tmp_path: Path, headers: list[tuple[str, str]]
) -> None:
    """A client cannot pick a friendlier policy by adding the other proxy's path header."""
    routes = tmp_path / "routes.toml"
    routes.write_text(PRIVATE_AND_ORGANIZATION_ROUTES)
    stack = await start_stack(KEYGATE_ROUTES_FILE=str(routes))
    response = await stack.gateway.get(AUTH, headers=headers)
    assert response.status == 400


async def test_auth_endpoint_takes_a_path_header_repeated_with_the_same_value(
    start_stack: StartStack, tmp_path: Path
) -> None:
    """Only distinct values are ambiguous (docs/gateway.md, forward auth): the same path sent
    twice gets that path's policy, here the 401 of a protected route."""
    routes = tmp_path / "routes.toml"
    routes.write_text(PRIVATE_AND_ORGANIZATION_ROUTES)
    stack = await start_stack(KEYGATE_ROUTES_FILE=str(routes))
    twice = [("X-Forwarded-Uri", "/private/report")] * 2
    assert (await stack.gateway.get(AUTH, headers=twice)).status == 401


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_original_path"),
        ({"X-Original-URL": "/private/report"}, "missing_original_path"),
        ({"X-Forwarded-Uri": "/private;jsessionid=x/report"}, "ambiguous_path"),
        ({"X-Original-URI": "/public/", "X-Envoy-Original-Path": "/private/r"}, "ambiguous_path"),
    ],
    ids=["no-header", "unread-header", "path-parameter", "envoy-disagrees"],
)
async def test_auth_endpoint_never_decides_for_a_path_it_was_not_given(
    start_stack: StartStack, tmp_path: Path, headers: dict[str, str], reason: str
) -> None:
    """Without a path header, or with a ; parameter, the answer is a 400 problem, not the
    policy of `/` (security review finding 12)."""
    routes = tmp_path / "routes.toml"
    routes.write_text(PRIVATE_AND_ORGANIZATION_ROUTES)
    stack = await start_stack(KEYGATE_ROUTES_FILE=str(routes))
    response = await stack.gateway.get(AUTH, headers=headers)
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["reason"] == reason
    if reason == "missing_original_path":
        for name in ("X-Original-URI", "X-Forwarded-Uri", "X-Envoy-Original-Path"):
            assert name in problem["detail"]
    assert "X-Keygate-Auth-Method" not in response.headers
