"""Forward auth behind a real nginx (deploy/nginx): nginx asks ``/_keygate/auth``, the app sees
keygate's identity or nothing at all.

The endpoint's own answers, asked directly, are in ``test_auth_endpoint.py``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from keygate_core.token_format import generate_token
from tests.harness.cases import PRIVATE_AND_ORGANIZATION_ROUTES, SPOOFED
from tests.harness.nginx import DEPLOY_DIR, NginxServer, render
from tests.harness.servers import ServerUnavailable, free_port
from tests.harness.stack import API, Stack, StartStack

REALM = 'Bearer realm="keygate"'
TOKEN_CHALLENGE = f'{REALM}, error="invalid_token"'
StartNginx = Callable[..., NginxServer]


def _host_port(url: str) -> str:
    parsed = URL(url)
    return f"{parsed.host}:{parsed.port}"


@pytest.fixture
def start_nginx() -> Iterator[StartNginx]:
    """Start nginx with the deploy/nginx example in front of a stack; stopped in teardown.

    A missing nginx fails the test (never skips it): CI must not pass without the server.
    """
    running: list[NginxServer] = []
    base_dirs: list[Path] = []

    def start(stack: Stack, *, keygate: str | None = None) -> NginxServer:
        template = (DEPLOY_DIR / "keygate-forward-auth.conf").read_text()
        base_dirs.append(Path(tempfile.mkdtemp(prefix="keygate-test-nginx-")))
        port = free_port()
        site = render(
            template,
            {
                "LISTEN": f"127.0.0.1:{port}",
                "KEYGATE": keygate or _host_port(str(stack.gateway.make_url(""))),
                "APP": _host_port(stack.upstream_url),
            },
        )
        try:
            server = NginxServer(base_dirs[-1], site, port=port)
            running.append(server)
            server.start()
        except ServerUnavailable as exc:
            pytest.fail(f"cannot start the test nginx: {exc}", pytrace=False)
        return server

    yield start
    for server in running:
        server.stop()
    for base in base_dirs:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for talking to nginx."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def nginx(stack: Stack, start_nginx: StartNginx) -> NginxServer:
    """nginx with the example config in front of the default stack."""
    return start_nginx(stack)


async def test_nginx_forwards_keygate_identity_not_the_clients(
    stack: Stack, nginx: NginxServer, http: aiohttp.ClientSession
) -> None:
    """A valid token: the app sees keygate's identity, no spoofed copy and no bearer token."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await http.get(
        f"{nginx.url}/orders?page=2",
        headers=[
            ("Authorization", f"Bearer {token}"),
            ("X-Keygate-User-Id", SPOOFED),
            ("x-keygate-user-id", SPOOFED),
            ("X_Keygate_User_Id", SPOOFED),
            ("X-Keygate-Workspace-Id", SPOOFED),
        ],
    )
    assert response.status == 200, nginx.errors()
    assert response.headers["X-Upstream"] == "yes"
    assert response.headers["X-RateLimit-Remaining"] == "599"
    seen = stack.upstream.last
    assert seen.raw_path == "/orders?page=2"
    assert seen.header("X-Keygate-User-Id") == [str(alice.id)]
    assert seen.header("X-Keygate-User-Email") == ["alice@example.com"]
    assert seen.header("X-Keygate-Auth-Method") == ["token"]
    assert seen.header("X-Keygate-Token-Scope") == ["PERSONAL"]
    assert len(seen.header("X-Keygate-Token-Id")) == 1
    assert seen.header("X-Keygate-Workspace-Id") == []
    assert seen.header("X_Keygate_User_Id") == []
    assert seen.header("Authorization") == []
    assert token not in repr(seen.headers)
    assert SPOOFED not in repr(seen.headers)
    assert len(seen.header("X-Request-Id")) == 1


async def test_nginx_without_token_reaches_app_as_anonymous(
    stack: Stack, nginx: NginxServer, http: aiohttp.ClientSession
) -> None:
    """No bearer token: the app is reached as anonymous with its own cookie and Basic auth."""
    response = await http.get(
        f"{nginx.url}/dashboard",
        headers={
            "Cookie": "sid=abc",
            "Authorization": "Basic YWxpY2U6c2VjcmV0",
            "X-Keygate-User-Id": SPOOFED,
        },
    )
    assert response.status == 200, nginx.errors()
    seen = stack.upstream.last
    # No identity header at all (no empty value, no placeholder text), only the method.
    assert {k: v for k, v in seen.headers if "keygate" in k.lower()} == {
        "X-Keygate-Auth-Method": "anonymous"
    }
    assert seen.header("Cookie") == ["sid=abc"]
    assert seen.header("Authorization") == ["Basic YWxpY2U6c2VjcmV0"]
    assert "X-RateLimit-Remaining" not in response.headers


async def test_nginx_passes_the_request_body_to_the_app_only(
    stack: Stack, nginx: NginxServer, http: aiohttp.ClientSession
) -> None:
    """A POST body reaches the app intact; keygate decides on headers alone."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    body = b"x" * 200_000
    response = await http.post(
        f"{nginx.url}/upload", data=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200, nginx.errors()
    assert (await response.json())["size"] == len(body)
    assert stack.upstream.last.header("X-Keygate-User-Id") == [str(alice.id)]


@pytest.mark.parametrize(
    ("path", "authorization", "status", "challenge", "reason"),
    [
        ("/dashboard", f"Bearer {generate_token()[0]}", 401, TOKEN_CHALLENGE, "invalid_token"),
        ("/dashboard", "Bearer kg_abc", 401, TOKEN_CHALLENGE, "invalid_token"),
        ("/dashboard", "Bearer a b", 400, f'{REALM}, error="invalid_request"', "invalid_request"),
        ("/docs/%2e%2e/private/report", None, 400, None, "ambiguous_path"),
        ("/private;jsessionid=x/report", None, 400, None, "ambiguous_path"),
    ],
    ids=["unknown-token", "malformed-token", "malformed-header", "ambiguous-path", "parameter"],
)
async def test_nginx_refuses_before_the_app(
    stack: Stack,
    nginx: NginxServer,
    http: aiohttp.ClientSession,
    path: str,
    authorization: str | None,
    status: int,
    challenge: str | None,
    reason: str,
) -> None:
    """Bad bearer tokens and ambiguous paths get keygate's refusal through nginx, never the app."""
    # The refusal keeps keygate's status, challenge, problem+json reason and request id.
    headers = {"Cookie": "sid=valid"}
    if authorization:
        headers["Authorization"] = authorization
    response = await http.get(URL(f"{nginx.url}{path}", encoded=True), headers=headers)
    assert response.status == status, nginx.errors()
    assert response.headers.getall("WWW-Authenticate", []) == ([challenge] if challenge else [])
    assert response.content_type == "application/problem+json"
    assert (await response.json())["reason"] == reason
    assert response.headers["X-Request-Id"]
    assert stack.upstream.requests == []


@pytest.mark.parametrize(
    ("path", "with_token", "status", "challenge", "reason"),
    [
        ("/private/report", False, 401, REALM, "unauthenticated"),
        ("/PRIVATE/report", False, 401, REALM, "unauthenticated"),
        ("/Private", False, 401, REALM, "unauthenticated"),
        (
            "/org-reports/q3",
            True,
            403,
            f'{REALM}, error="insufficient_scope"',
            "insufficient_scope",
        ),
    ],
    ids=["required-without-token", "other-case", "bare-prefix", "scope-too-small"],
)
async def test_nginx_applies_route_policy_of_the_original_uri(
    start_stack: StartStack,
    start_nginx: StartNginx,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    path: str,
    with_token: bool,
    status: int,
    challenge: str,
    reason: str,
) -> None:
    """keygate's route rules apply to the URI nginx protects, and the app is never reached."""
    # 401 without a credential, 403 on scope, each with its challenge.
    routes = tmp_path / "routes.toml"
    routes.write_text(PRIVATE_AND_ORGANIZATION_ROUTES)
    stack = await start_stack(KEYGATE_ROUTES_FILE=str(routes))
    nginx = start_nginx(stack)
    headers = {}
    if with_token:
        alice = await stack.introspector.user("alice@example.com")
        headers["Authorization"] = f"Bearer {await stack.token_for(alice)}"
    response = await http.get(f"{nginx.url}{path}", headers=headers)
    assert response.status == status, nginx.errors()
    assert response.headers.getall("WWW-Authenticate")[0].startswith(challenge)
    assert len(response.headers.getall("WWW-Authenticate")) == 1
    assert (await response.json())["reason"] == reason
    assert stack.upstream.requests == []


async def test_nginx_passes_rate_limit_429_through(
    start_stack: StartStack, start_nginx: StartNginx, http: aiohttp.ClientSession
) -> None:
    """keygate's 429 reaches the client as 429 with Retry-After (not nginx's usual 500)."""
    stack = await start_stack(KEYGATE_RATE_LIMIT_PER_MINUTE="1")
    nginx = start_nginx(stack)
    alice = await stack.introspector.user("alice@example.com")
    headers = {"Authorization": f"Bearer {await stack.token_for(alice)}"}
    assert (await http.get(f"{nginx.url}/a", headers=headers)).status == 200
    response = await http.get(f"{nginx.url}/b", headers=headers)
    assert response.status == 429, nginx.errors()
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert (await response.json())["reason"] == "rate_limited"
    assert len(stack.upstream.requests) == 1


async def test_nginx_passes_introspector_outage_503_through(
    start_stack: StartStack, start_nginx: StartNginx, http: aiohttp.ClientSession
) -> None:
    """With the introspector gone, a bearer request gets 503 + Retry-After, never the app."""
    stack = await start_stack()
    nginx = start_nginx(stack)
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    await stack.introspector.client.close()
    response = await http.get(f"{nginx.url}/x", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 503, nginx.errors()
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["reason"] == "auth_unavailable"
    assert stack.upstream.requests == []


async def test_nginx_with_keygate_unreachable_is_503(
    stack: Stack, start_nginx: StartNginx, http: aiohttp.ClientSession
) -> None:
    """keygate itself down: 503 + Retry-After for everyone — nginx never lets a request pass."""
    nginx = start_nginx(stack, keygate=f"127.0.0.1:{free_port()}")
    response = await http.get(f"{nginx.url}/x", headers={"Cookie": "sid=abc"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert stack.upstream.requests == []


async def test_nginx_auth_location_is_internal(
    stack: Stack, nginx: NginxServer, http: aiohttp.ClientSession
) -> None:
    """Clients cannot call the decision location themselves: 404, nothing reaches the app."""
    response = await http.get(f"{nginx.url}/_keygate_auth")
    assert response.status == 404
    assert stack.upstream.requests == []


async def test_nginx_serves_keygate_api_through_the_gateway(
    stack: Stack, nginx: NginxServer, http: aiohttp.ClientSession
) -> None:
    """keygate's own API is proxied to the gateway: whoami answers for the token's owner."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await http.get(
        f"{nginx.url}{API}/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200, nginx.errors()
    assert (await response.json())["userId"] == str(alice.id)
    assert (await http.get(f"{nginx.url}{API}/whoami")).status == 401
    assert stack.upstream.requests == []
