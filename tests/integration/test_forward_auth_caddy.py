"""Forward auth behind a real Caddy (deploy/caddy): Caddy asks ``/_keygate/auth``, the app sees
keygate's identity or none at all — never a client's copy, never a placeholder's literal text.

Caddy 2.6's own ``forward_auth … copy_headers`` sent the app the text
``{http.reverse_proxy.header.X-Keygate-User-Id}`` as the user id of an anonymous request; the
recipe is written without it, and ``test_caddy_anonymous_request_carries_no_identity`` is the
case that caught it. The nginx recipe's tests are in ``test_forward_auth.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from keygate_core.token_format import generate_token
from tests.harness.caddy import DEPLOY_DIR, CaddyServer, caddy_version
from tests.harness.cases import (
    PRIVATE_AND_ORGANIZATION_ROUTES,
    SPOOFED,
    SPOOFED_TOKEN_CLAIM,
)
from tests.harness.nginx import render
from tests.harness.servers import ServerUnavailable, free_port
from tests.harness.stack import API, Stack, StartStack
from tests.harness.upstream import Received

REALM = 'Bearer realm="keygate"'
StartCaddy = Callable[..., CaddyServer]
#: Every spelling of a spoofed identity a client might try, all of which must be dropped.
SPOOFS = [
    ("X-Keygate-User-Id", SPOOFED),
    ("x-keygate-user-id", SPOOFED),
    ("X_Keygate_User_Id", SPOOFED),
    ("x_KEYGATE-user_id", SPOOFED),
    ("X-Keygate-Workspace-Id", SPOOFED),
    ("X-Keygate-Internal-Secret", SPOOFED),
    *SPOOFED_TOKEN_CLAIM,
]


def _host_port(url: str) -> str:
    parsed = URL(url)
    return f"{parsed.host}:{parsed.port}"


def _keygate_headers(seen: Received) -> dict[str, str]:
    """Every header the app got whose name says keygate, in any spelling."""
    return {k: v for k, v in seen.headers if "keygate" in k.lower()}


@pytest.fixture(scope="module", autouse=True)
def _report_caddy_version() -> None:
    """Say which Caddy was tested: the recipe's behaviour differs between Caddy versions."""
    try:
        print(f"\ncaddy under test: {caddy_version()}")
    except ServerUnavailable as exc:
        pytest.fail(f"cannot run the test caddy: {exc}", pytrace=False)


@pytest.fixture
def start_caddy(tmp_path: Path) -> Iterator[StartCaddy]:
    """Start Caddy with the deploy/caddy recipe in front of a stack; stopped in teardown.

    A missing caddy fails the test (never skips it): CI must not pass without the server.
    """
    running: list[CaddyServer] = []

    def start(stack: Stack, *, keygate: str | None = None) -> CaddyServer:
        port = free_port()
        site = render(
            (DEPLOY_DIR / "keygate-forward-auth.caddy").read_text(),
            {
                "LISTEN": f"http://:{port}",
                "KEYGATE": keygate or _host_port(str(stack.gateway.make_url(""))),
                "APP": _host_port(stack.upstream_url),
            },
        )
        server = CaddyServer(tmp_path / f"caddy-{len(running)}", site, port=port)
        running.append(server)
        try:
            server.start()
        except ServerUnavailable as exc:
            pytest.fail(f"cannot start the test caddy: {exc}", pytrace=False)
        return server

    try:
        yield start
    finally:
        for server in running:
            server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for talking to Caddy."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def caddy(stack: Stack, start_caddy: StartCaddy) -> CaddyServer:
    """Caddy with the recipe in front of the default stack."""
    return start_caddy(stack)


async def test_caddy_forwards_keygate_identity_not_the_clients(
    stack: Stack, caddy: CaddyServer, http: aiohttp.ClientSession
) -> None:
    """A valid token: the app sees keygate's identity only, the client its rate limit."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await http.get(
        f"{caddy.url}/orders?page=2", headers=[("Authorization", f"Bearer {token}"), *SPOOFS]
    )
    assert response.status == 200, caddy.errors()
    assert response.headers["X-Upstream"] == "yes"
    assert response.headers["X-RateLimit-Limit"] == "600"
    assert response.headers["X-RateLimit-Remaining"] == "599"
    assert int(response.headers["X-RateLimit-Reset"]) >= 0
    seen = stack.upstream.last
    assert seen.raw_path == "/orders?page=2"
    kg = _keygate_headers(seen)
    assert kg.pop("X-Keygate-Token-Id")
    assert kg == {
        "X-Keygate-User-Id": str(alice.id),
        "X-Keygate-User-Email": "alice@example.com",
        "X-Keygate-Token-Scope": "PERSONAL",
        "X-Keygate-Auth-Method": "token",
    }
    assert len(_keygate_headers(seen)) == len(kg) + 1  # one value each, no duplicates
    assert seen.header("Authorization") == []
    assert token not in repr(seen.headers)
    assert SPOOFED not in repr(seen.headers)
    assert len(seen.header("X-Request-Id")) == 1


async def test_caddy_anonymous_request_carries_no_identity(
    stack: Stack, caddy: CaddyServer, http: aiohttp.ClientSession
) -> None:
    """No token on an optional route: no identity header, no placeholder text, no spoof."""
    # The regression: Caddy 2.6's copy_headers sent "{http.reverse_proxy.header.…}" here.
    response = await http.get(
        f"{caddy.url}/dashboard",
        headers=[("Cookie", "sid=abc"), ("Authorization", "Basic YWxpY2U6c2VjcmV0"), *SPOOFS],
    )
    assert response.status == 200, caddy.errors()
    seen = stack.upstream.last
    assert _keygate_headers(seen) == {"X-Keygate-Auth-Method": "anonymous"}
    assert not [(k, v) for k, v in seen.headers if "{" in v or "}" in v]
    assert seen.header("Cookie") == ["sid=abc"]
    assert seen.header("Authorization") == ["Basic YWxpY2U6c2VjcmV0"]
    assert not [name for name in response.headers if name.lower().startswith("x-ratelimit")]
    assert not [(k, v) for k, v in response.headers.items() if "{" in v]


async def test_caddy_passes_the_request_body_to_the_app_only(
    stack: Stack, caddy: CaddyServer, http: aiohttp.ClientSession
) -> None:
    """A POST body reaches the app intact; keygate decides on headers alone."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    body = b"x" * 200_000
    response = await http.post(
        f"{caddy.url}/upload", data=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200, caddy.errors()
    assert (await response.json())["size"] == len(body)
    assert stack.upstream.last.header("X-Keygate-User-Id") == [str(alice.id)]


@pytest.mark.parametrize(
    ("authorization", "status", "reason"),
    [
        (f"Bearer {generate_token()[0]}", 401, "invalid_token"),
        ("Bearer kg_abc", 401, "invalid_token"),
        ("Bearer a b", 400, "invalid_request"),
    ],
    ids=["unknown-token", "malformed-token", "malformed-header"],
)
async def test_caddy_refuses_bad_tokens_before_the_app(
    stack: Stack,
    caddy: CaddyServer,
    http: aiohttp.ClientSession,
    authorization: str,
    status: int,
    reason: str,
) -> None:
    """A bad bearer token gets keygate's own refusal through Caddy, and the app is not called."""
    response = await http.get(
        f"{caddy.url}/dashboard", headers={"Authorization": authorization, "Cookie": "sid=x"}
    )
    assert response.status == status, caddy.errors()
    assert response.headers.getall("WWW-Authenticate")[0].startswith(f"{REALM}, error=")
    assert response.content_type == "application/problem+json"
    assert (await response.json())["reason"] == reason
    assert response.headers["X-Request-Id"]
    assert stack.upstream.requests == []


@pytest.mark.parametrize(
    ("path", "spoofed_path", "with_token", "status", "reason"),
    [
        ("/private/report", None, False, 401, "unauthenticated"),
        ("/PRIVATE/report", None, False, 401, "unauthenticated"),
        ("/private/report", "/public", False, 401, "unauthenticated"),
        ("/docs/%2e%2e/private/report", None, False, 400, "ambiguous_path"),
        ("/org-reports/q3", None, True, 403, "insufficient_scope"),
    ],
    ids=["required", "other-case", "client-sent-path", "ambiguous-path", "scope-too-small"],
)
async def test_caddy_applies_route_policy_of_the_request_path(
    start_stack: StartStack,
    start_caddy: StartCaddy,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    path: str,
    spoofed_path: str | None,
    with_token: bool,
    status: int,
    reason: str,
) -> None:
    """keygate decides for the path Caddy serves, whatever path header the client sends."""
    routes = tmp_path / "routes.toml"
    routes.write_text(PRIVATE_AND_ORGANIZATION_ROUTES)
    stack = await start_stack(KEYGATE_ROUTES_FILE=str(routes))
    caddy = start_caddy(stack)
    headers = {}
    if with_token:
        alice = await stack.introspector.user("alice@example.com")
        headers["Authorization"] = f"Bearer {await stack.token_for(alice)}"
    if spoofed_path:
        for name in ("X-Original-URI", "X-Envoy-Original-Path", "X-Forwarded-Uri"):
            headers[name] = spoofed_path
    response = await http.get(URL(f"{caddy.url}{path}", encoded=True), headers=headers)
    assert response.status == status, caddy.errors()
    assert (await response.json())["reason"] == reason
    assert stack.upstream.requests == []


async def test_caddy_passes_rate_limit_429_through(
    start_stack: StartStack, start_caddy: StartCaddy, http: aiohttp.ClientSession
) -> None:
    """keygate's 429 reaches the client as sent: Retry-After, X-RateLimit-*, problem+json."""
    stack = await start_stack(KEYGATE_RATE_LIMIT_PER_MINUTE="1")
    caddy = start_caddy(stack)
    alice = await stack.introspector.user("alice@example.com")
    headers = {"Authorization": f"Bearer {await stack.token_for(alice)}"}
    assert (await http.get(f"{caddy.url}/a", headers=headers)).status == 200
    response = await http.get(f"{caddy.url}/b", headers=headers)
    assert response.status == 429, caddy.errors()
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert (await response.json())["reason"] == "rate_limited"
    assert len(stack.upstream.requests) == 1


async def test_caddy_passes_introspector_outage_503_through(
    start_stack: StartStack, start_caddy: StartCaddy, http: aiohttp.ClientSession
) -> None:
    """With the introspector gone, a bearer request gets keygate's 503 + Retry-After."""
    stack = await start_stack()
    caddy = start_caddy(stack)
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    await stack.introspector.client.close()
    response = await http.get(f"{caddy.url}/x", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 503, caddy.errors()
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["reason"] == "auth_unavailable"
    assert stack.upstream.requests == []


async def test_caddy_with_keygate_unreachable_never_reaches_the_app(
    stack: Stack, start_caddy: StartCaddy, http: aiohttp.ClientSession
) -> None:
    """keygate itself down: Caddy's 502 for everyone — never a pass to the app."""
    caddy = start_caddy(stack, keygate=f"127.0.0.1:{free_port()}")
    response = await http.get(f"{caddy.url}/x", headers={"Cookie": "sid=abc"})
    assert response.status == 502
    assert stack.upstream.requests == []


async def test_caddy_serves_keygate_api_through_the_gateway(
    stack: Stack, caddy: CaddyServer, http: aiohttp.ClientSession
) -> None:
    """keygate's own API is proxied to the gateway: whoami answers for the token's owner."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await http.get(
        f"{caddy.url}{API}/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200, caddy.errors()
    assert (await response.json())["userId"] == str(alice.id)
    assert (await http.get(f"{caddy.url}{API}/whoami")).status == 401
    assert stack.upstream.requests == []
