"""The route-rule bypass of security review finding 1, tried as an attacker would, through a
running gateway on both data paths (the relay, and aiohttp for chunked bodies).

Routes file: ``/admin/`` needs a credential. Before the fix ``GET /ADMIN/users`` and
``GET /admin;x=1/users`` reached the upstream as anonymous (Express folds case; servlet
containers drop ``;`` parameters, so both apps serve ``/admin/users``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.stack import Stack, StartStack
from tests.reliability.rawhttp import exchange, request_bytes

ROUTES = """
[[route]]
prefix = "/admin/"
auth = "required"

[[route]]
prefix = "/billing/{workspace}/"
auth = "required"
scope = "WORKSPACE"

[[route]]
prefix = "/Exact/"
auth = "required"
case_sensitive = true
"""

#: Request heads that make the relay hand the request to aiohttp (the slow path).
PATHS = {
    "relay": [],
    "aiohttp": [("Transfer-Encoding", "chunked")],
}


@pytest.fixture
async def stack(start_stack: StartStack, tmp_path: Path) -> Stack:
    """A stack whose routes file protects /admin/ and /billing/{workspace}/."""
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES, encoding="utf-8")
    return await start_stack(KEYGATE_ROUTES_FILE=str(routes))


async def send(stack: Stack, target: str, data_path: str, **extra: str) -> int:
    """``GET target`` anonymously over a raw socket; the status of the one answer."""
    assert stack.gateway.port is not None
    headers = [("Host", "gateway"), ("Connection", "close"), *PATHS[data_path], *extra.items()]
    body = b"0\r\n\r\n" if PATHS[data_path] else b""
    responses = await exchange(stack.gateway.port, request_bytes("GET", target, headers, body))
    assert len(responses) == 1, target
    return responses[0].status


@pytest.mark.parametrize("data_path", sorted(PATHS))
@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/admin/users", 401),
        ("/ADMIN/users", 401),
        ("/Admin/Users", 401),
        ("/admin", 401),
        ("/ADMIN", 401),
        ("/admin;x=1/users", 400),
        ("/admin;jsessionid=abc/users", 400),
        ("/ADMIN;x/users", 400),
        ("/admin%3bx/users", 400),
        ("/admin/users;x=1", 400),
        ("/billing/ws-b", 401),
        ("/BILLING/ws-b/invoices", 401),
        ("/billing/ws-b;x/invoices", 400),
        ("/Exact/x", 401),
        ("/API/platform/internal/whoami", 401),
    ],
)
async def test_anonymous_case_and_parameter_variants_never_reach_the_upstream(
    stack: Stack, data_path: str, target: str, status: int
) -> None:
    """Case variants, bare prefixes and ; parameters of a protected path are refused, and the
    upstream receives nothing."""
    assert await send(stack, target, data_path) == status
    assert stack.upstream.requests == []


@pytest.mark.parametrize("data_path", sorted(PATHS))
@pytest.mark.parametrize(
    "target",
    ["/exact/x", "/EXACT/x", "/administrator", "/billing", "/public;x=1?q=a;b"],
)
async def test_paths_outside_the_rules_still_reach_the_upstream(
    stack: Stack, data_path: str, target: str
) -> None:
    """Only the protected shapes are refused: a case_sensitive rule keeps other spellings
    open, a prefix stops at its segment, and ; in the query is fine."""
    status = await send(stack, target, data_path)
    if ";" in target.split("?")[0]:
        assert status == 400
        assert stack.upstream.requests == []
        return
    assert status == 200
    assert stack.upstream.last.raw_path == target
    assert stack.upstream.last.header("X-Keygate-Auth-Method") == ["anonymous"]


@pytest.mark.parametrize("data_path", sorted(PATHS))
async def test_a_token_reaches_a_case_variant_with_its_identity(
    stack: Stack, data_path: str
) -> None:
    """With a credential, /ADMIN/users is forwarded as sent, under /admin/'s policy."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    status = await send(stack, "/ADMIN/users", data_path, Authorization=f"Bearer {token}")
    assert status == 200
    assert stack.upstream.last.raw_path == "/ADMIN/users"
    assert stack.upstream.last.header("X-Keygate-User-Id") == [str(alice.id)]


@pytest.mark.parametrize("data_path", ["aiohttp"])
@pytest.mark.parametrize("target", ["http://evil.example/admin/users", "evil.example:443", "*"])
async def test_a_target_not_starting_with_a_slash_is_never_forwarded(
    stack: Stack, data_path: str, target: str
) -> None:
    """Absolute-, authority- and asterisk-form targets never join the upstream's base URL."""
    for method in ("GET", "CONNECT", "OPTIONS"):
        assert stack.gateway.port is not None
        headers = [("Host", "gateway"), ("Connection", "close"), *PATHS[data_path]]
        data = request_bytes(method, target, headers, b"0\r\n\r\n")
        responses = await exchange(stack.gateway.port, data)
        assert all(400 <= r.status < 500 for r in responses), (method, target, responses)
    assert stack.upstream.requests == []


@pytest.mark.parametrize("data_path", sorted(PATHS))
@pytest.mark.parametrize(
    "target",
    ["/API/platform/internal/whoami", "/api/Platform/Internal/api-tokens", "/Settings/api-keys"],
)
async def test_case_variants_of_keygate_paths_never_reach_the_app(
    stack: Stack, data_path: str, target: str
) -> None:
    """With a token, a case variant of keygate's own paths goes to keygate's service (which
    routes case-sensitively and does not serve it), never to the application."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    status = await send(stack, target, data_path, Authorization=f"Bearer {token}")
    assert status != 200
    assert stack.upstream.requests == []
