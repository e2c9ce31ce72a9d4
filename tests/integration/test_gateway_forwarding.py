"""Forwarding: header hygiene, raw paths, streaming bodies, WebSockets, and upstream failures."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from tests.harness.cases import SPOOFED, SPOOFED_TOKEN_CLAIM, SPOOFED_USER_ID_SPELLINGS
from tests.harness.stack import Stack, StartStack

SPOOFED_SETS = {
    **SPOOFED_USER_ID_SPELLINGS,
    "duplicated": [("X-Keygate-User-Id", SPOOFED), ("X-Keygate-User-Id", SPOOFED)],
    "padded": [("X-Keygate-User-Id", f" {SPOOFED} ")],
    "named-in-connection": [("Connection", "X-Keygate-User-Id"), ("X-Keygate-User-Id", SPOOFED)],
    "method-and-scope": SPOOFED_TOKEN_CLAIM,
    "internal-headers": [
        ("X-Keygate-Internal-Secret", "guess"),
        ("X-Keygate-Client-Address", "10.0.0.1"),
    ],
}


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def raw_url(stack: Stack, raw_path: str) -> URL:
    """An absolute URL to the gateway whose path is sent exactly as written."""
    return URL(str(stack.gateway.make_url("")).rstrip("/") + raw_path, encoded=True)


@pytest.mark.parametrize("headers", list(SPOOFED_SETS.values()), ids=list(SPOOFED_SETS))
@pytest.mark.parametrize("with_token", [False, True], ids=["anonymous", "bearer"])
async def test_spoofed_identity_headers_never_reach_the_upstream(
    stack: Stack, headers: list[tuple[str, str]], with_token: bool
) -> None:
    """Whatever identity headers a client sends, the upstream sees only the gateway's own."""
    request_headers = list(headers)
    if with_token:
        alice = await stack.introspector.user("alice@example.com")
        request_headers.append(("Authorization", f"Bearer {await stack.token_for(alice)}"))
    response = await stack.gateway.get("/x", headers=request_headers)
    assert response.status == 200
    seen = stack.upstream.last
    assert SPOOFED not in repr(seen.headers)
    assert "guess" not in repr(seen.headers)
    assert not [k for k, _ in seen.headers if "_" in k and "keygate" in k.lower()]
    assert seen.header("X-Keygate-Auth-Method") == ["token" if with_token else "anonymous"]
    assert seen.header("X-Keygate-Token-Scope") == (["PERSONAL"] if with_token else [])


async def test_hop_by_hop_headers_are_removed(stack: Stack) -> None:
    """Connection-listed and hop-by-hop headers stop at the gateway."""
    await stack.gateway.get(
        "/x",
        headers={
            "Connection": "keep-alive, X-Private",
            "X-Private": "1",
            "Keep-Alive": "5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic x",
            "X-Normal": "yes",
        },
    )
    seen = stack.upstream.last
    for name in ("X-Private", "Keep-Alive", "TE", "Proxy-Authorization"):
        assert seen.header(name) == [], name
    assert seen.header("X-Normal") == ["yes"]


async def test_forwarded_headers_from_untrusted_clients_are_replaced(stack: Stack) -> None:
    """A client's own X-Forwarded-* is discarded; the gateway writes the true peer."""
    await stack.gateway.get(
        "/x", headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example"}
    )
    seen = stack.upstream.last
    assert seen.header("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.header("X-Forwarded-Host") != ["evil.example"]
    assert seen.header("X-Forwarded-Proto") == ["http"]


async def test_request_id_is_propagated_from_a_trusted_proxy_or_created(
    start_stack: StartStack,
) -> None:
    """A trusted proxy's sane X-Request-Id is passed on and echoed; a missing one is created."""
    stack = await start_stack(KEYGATE_TRUSTED_PROXIES="127.0.0.1/32")
    response = await stack.gateway.get("/x", headers={"X-Request-Id": "abc-123"})
    assert stack.upstream.last.header("X-Request-Id") == ["abc-123"]
    assert response.headers["X-Request-Id"] == "abc-123"
    response = await stack.gateway.get("/x")
    created = response.headers["X-Request-Id"]
    assert created and stack.upstream.last.header("X-Request-Id") == [created]


async def test_request_id_from_an_untrusted_client_is_replaced(stack: Stack) -> None:
    """A client that is not a trusted proxy cannot choose the request id (e.g. reuse a
    victim's to muddle the audit log): the gateway makes a new one, on both data paths."""
    for chunked in (False, True):  # the relay, then aiohttp (which reads chunked bodies)
        body = _chunks([b"x"]) if chunked else b"x"
        response = await stack.gateway.post("/x", headers={"X-Request-Id": "victims-id"}, data=body)
        created = response.headers["X-Request-Id"]
        assert created != "victims-id"
        assert stack.upstream.last.header("X-Request-Id") == [created]


@pytest.mark.parametrize(
    "raw_path",
    ["/a%20b/c?q=%41&r=%2F", "/caf%C3%A9", "/x?matrix=1;y=2", "/a+b?c=d+e", "/%7Euser"],
    ids=["spaces-and-query", "utf8", "semicolon-in-query", "plus", "tilde"],
)
async def test_raw_path_is_forwarded_byte_for_byte(stack: Stack, raw_path: str) -> None:
    """The upstream receives exactly the path and query the client sent."""
    async with stack.gateway.session.get(raw_url(stack, raw_path)) as response:
        assert response.status == 200
    assert stack.upstream.last.raw_path == raw_path


@pytest.mark.parametrize(
    "raw_path",
    [
        "/a/%2F/b",
        "/a/%2f",
        "/a/../admin",
        "/a/./b",
        "/a/%2e%2e/b",
        "//double",
        "/a%5Cb",
        "/x;matrix=1",
    ],
    ids=[
        "encoded-slash",
        "encoded-slash-lower",
        "dot-dot",
        "dot",
        "encoded-dots",
        "double-slash",
        "encoded-backslash",
        "path-parameter",
    ],
)
async def test_ambiguous_paths_are_400(stack: Stack, raw_path: str) -> None:
    """Paths that decode differently for different readers are refused, not guessed at."""
    async with stack.gateway.session.get(raw_url(stack, raw_path)) as response:
        assert response.status == 400
    assert stack.upstream.requests == []


async def test_large_upload_and_download_stream(stack: Stack) -> None:
    """A 32 MiB upload and download pass through intact."""
    size = 32 * 1024 * 1024
    block = bytes(range(256)) * 4096

    async def body():
        for _ in range(size // len(block)):
            yield block

    response = await stack.gateway.post("/upload", data=body())
    assert response.status == 200
    expected = hashlib.sha256(block * (size // len(block))).hexdigest()
    assert await response.json() == {"size": size, "sha256": expected}

    response = await stack.gateway.get(f"/download?size={size}")
    digest = hashlib.sha256()
    received = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        digest.update(chunk)
        received += len(chunk)
    assert received == size


async def test_multiple_set_cookie_headers_survive(stack: Stack) -> None:
    """Two Set-Cookie headers from the upstream both reach the client."""
    response = await stack.gateway.get("/cookies")
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


async def test_websocket_is_proxied_with_authentication(stack: Stack) -> None:
    """A WebSocket upgrade with a bearer token reaches the upstream as that user."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    async with stack.gateway.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send_str("hello")
        message = await ws.receive(timeout=5)
        assert message.data == f"{alice.id}:hello"


async def test_websocket_with_bad_token_is_refused(stack: Stack) -> None:
    """A WebSocket upgrade with a bad token is a 401, never an upgrade."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await stack.gateway.ws_connect("/ws", headers={"Authorization": "Bearer kg_nope"})
    assert caught.value.status == 401


async def test_upstream_unreachable_is_502(start_stack: StartStack) -> None:
    """When nothing listens at the upstream address the client gets 502."""
    from tests.harness.servers import free_port

    stack = await start_stack(KEYGATE_UPSTREAM_URL=f"http://127.0.0.1:{free_port()}")
    response = await stack.gateway.get("/x")
    assert response.status == 502
    assert (await response.json())["reason"] == "upstream_unreachable"


async def test_upstream_timeout_is_504(start_stack: StartStack) -> None:
    """An upstream slower than the configured timeout gives 504."""
    stack = await start_stack(KEYGATE_UPSTREAM_TIMEOUT_SECONDS="1")
    response = await stack.gateway.get("/slow?seconds=3")
    assert response.status == 504
    assert (await response.json())["reason"] == "upstream_timeout"
