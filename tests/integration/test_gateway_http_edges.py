"""HTTP/1.1 at the gateway's edges, on raw sockets: pipelining, HTTP/1.0, HEAD, 1xx, 204 and 304,
and chunked bodies both ways.

Each test states what a client sees on the wire, never how the gateway reads or writes it, so
the same tests hold for any implementation of the data path. A response read off the socket is
framed by the rules a client follows (RFC 9112 §6.3); a stray byte after it (a body after HEAD,
a chunk terminator after 204) surfaces as the next response failing to parse.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest

from keygate_core.token_format import generate_token
from tests.harness.raw_upstream import RawUpstream, raw_upstream
from tests.harness.stack import Stack, StartStack
from tests.harness.upstream import stream_body
from tests.reliability.rawhttp import RawConnection, RawResponse, raw_connection, request_bytes

HOST = ("Host", "gateway.test")
UPLOAD = bytes(range(256)) * 512


@dataclass(frozen=True)
class Caller:
    """A token holder: the user id the upstream must see and the header that proves it."""

    user_id: str
    authorization: tuple[str, str]


@pytest.fixture
async def caller(stack: Stack) -> Caller:
    """Alice, with a fresh bearer token."""
    alice = await stack.introspector.user("alice@example.com")
    return Caller(str(alice.id), ("Authorization", f"Bearer {await stack.token_for(alice)}"))


def port(stack: Stack) -> int:
    """The gateway's port on 127.0.0.1."""
    found = stack.gateway.make_url("").port
    assert found is not None
    return found


def get(target: str, *headers: tuple[str, str]) -> bytes:
    """A GET for ``target`` with a Host header and ``headers``."""
    return request_bytes("GET", target, [HOST, *headers])


def echoed(response: RawResponse) -> dict[str, Any]:
    """The harness upstream's echo: the path it received and its headers (as pairs)."""
    assert response.status == 200, response
    body: dict[str, Any] = json.loads(response.body)
    body["headers"] = [tuple(pair) for pair in body["headers"]]
    return body


def uploaded(body: bytes) -> dict[str, object]:
    """What the upstream's ``/upload`` answers for ``body`` arriving whole."""
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


async def test_a_refusal_in_a_pipeline_keeps_the_others_in_order(
    stack: Stack, caller: Caller
) -> None:
    """A refused request between two good ones gets its problem answer in its place; the
    requests around it are forwarded and answered in order on the same connection."""
    forged = ("Authorization", f"Bearer {generate_token()[0]}")
    async with raw_connection(port(stack)) as conn:
        await conn.send(
            get("/pipe/before", caller.authorization)
            + get("/pipe/refused", forged)
            + get("/pipe/../after")
            + get("/pipe/after", caller.authorization)
        )
        before, refused, ambiguous, after = [await conn.response() for _ in range(4)]
    assert echoed(before)["path"] == "/pipe/before"
    assert refused.status == 401 and json.loads(refused.body)["reason"] == "invalid_token"
    assert ambiguous.status == 400 and json.loads(ambiguous.body)["reason"] == "ambiguous_path"
    assert echoed(after)["path"] == "/pipe/after"
    paths = [request.raw_path for request in stack.upstream.requests]
    assert "/pipe/refused" not in paths and paths[-2:] == ["/pipe/before", "/pipe/after"]


async def test_pipelined_gets_are_answered_in_order(stack: Stack, caller: Caller) -> None:
    """Three GETs written at once get three complete responses, in order, each for its path."""
    paths = ["/pipe/one", "/pipe/two?n=2", "/pipe/three"]
    async with raw_connection(port(stack)) as conn:
        await conn.send(b"".join(get(path, caller.authorization) for path in paths))
        bodies = [echoed(await conn.response()) for _ in paths]
    assert [body["path"] for body in bodies] == paths
    for body in bodies:
        assert ("X-Keygate-User-Id", caller.user_id) in body["headers"]


async def test_pipelined_post_body_between_gets(stack: Stack, caller: Caller) -> None:
    """A Content-Length POST pipelined between two GETs: its body arrives whole, and the GET
    after it is read as a request of its own."""
    post = request_bytes(
        "POST",
        "/upload",
        [HOST, caller.authorization, ("Content-Length", str(len(UPLOAD)))],
        UPLOAD,
    )
    async with raw_connection(port(stack)) as conn:
        await conn.send(get("/pipe/before", caller.authorization) + post + get("/pipe/after"))
        before, upload, after = [await conn.response() for _ in range(3)]
    assert echoed(before)["path"] == "/pipe/before"
    assert upload.status == 200 and json.loads(upload.body) == uploaded(UPLOAD)
    assert echoed(after)["path"] == "/pipe/after"
    assert [r.method for r in stack.upstream.requests] == ["GET", "POST", "GET"]


async def test_http10_request_gets_one_response_then_close(stack: Stack) -> None:
    """An HTTP/1.0 request without Host or keep-alive: one whole response, then a close."""
    async with raw_connection(port(stack)) as conn:
        await conn.send(b"GET /old HTTP/1.0\r\n\r\n")
        response = await conn.response()
        assert await conn.closed_by_server()
    assert echoed(response)["path"] == "/old"
    assert response.header("Transfer-Encoding") == []


def _check_body(path: str, response: RawResponse) -> None:
    if path.startswith("/stream"):
        assert response.status == 200 and response.body == stream_body(40)
    else:
        assert echoed(response)["path"] == path


@pytest.mark.parametrize("path", ["/old", "/stream?pieces=40"], ids=["length", "streamed"])
async def test_http10_keep_alive_response_is_readable(stack: Stack, path: str) -> None:
    """HTTP/1.0 with keep-alive: never chunked; a kept-alive connection has a Content-Length
    and serves the next request, any other ends with a close."""
    request = f"GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode()
    async with raw_connection(port(stack)) as conn:
        await conn.send(request)
        response = await conn.response()
        _check_body(path, response)
        assert response.header("Transfer-Encoding") == []
        if "keep-alive" in ",".join(response.header("Connection")).lower():
            assert response.header("Content-Length") == [str(len(response.body))]
            await conn.send(request)
            _check_body(path, await conn.response())
        else:
            assert await conn.closed_by_server()


@pytest.mark.parametrize(
    ("path", "length"),
    [("/sized?size=1234", "1234"), ("/stream?pieces=5", None)],
    ids=["length", "streamed"],
)
async def test_head_has_upstream_headers_and_no_body(
    stack: Stack, caller: Caller, path: str, length: str | None
) -> None:
    """HEAD: the upstream's headers (its Content-Length too), no body, and the connection
    then serves a GET."""
    async with raw_connection(port(stack)) as conn:
        await conn.send(request_bytes("HEAD", path, [HOST, caller.authorization]))
        head = await conn.response("HEAD")
        await conn.send(get("/sized?size=1234", caller.authorization))
        after = await conn.response()
    assert head.status == 200 and head.header("X-Upstream") == ["yes"]
    if length is not None:
        assert head.header("Content-Length") == [length]
    assert after.status == 200 and after.body == b"s" * 1234
    assert [r.method for r in stack.upstream.requests] == ["HEAD", "GET"]


async def _bodyless_then_get(
    conn: RawConnection, target: str, code: int, auth: tuple[str, str]
) -> None:
    """``target`` answers ``code`` with no body or framing; a GET after it still works."""
    await conn.send(get(target, ("If-None-Match", '"v1"'), auth))
    response = await conn.response()
    assert response.status == code
    assert response.header("Transfer-Encoding") == []
    assert response.header("ETag") == ['"v1"']
    await conn.send(get("/after", auth))
    assert echoed(await conn.response())["path"] == "/after"


@pytest.mark.parametrize("code", [204, 304])
async def test_bodyless_status_keeps_connection_usable(
    stack: Stack, caller: Caller, code: int
) -> None:
    """204 and 304 from the upstream: no body, no chunk terminator; the connection goes on."""
    async with raw_connection(port(stack)) as conn:
        for _ in range(2):
            await _bodyless_then_get(conn, f"/status/{code}", code, caller.authorization)


async def test_304_with_representation_length_has_no_body(start_stack: StartStack) -> None:
    """A 304 carrying the Content-Length a 200 would have (RFC 9110 §8.6) ends at its headers:
    the gateway waits for no body, and both connections stay usable."""
    upstream = RawUpstream(
        b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n'
    )
    async with raw_upstream(upstream) as url:
        stack = await start_stack(KEYGATE_UPSTREAM_URL=url)
        async with raw_connection(port(stack)) as conn:
            for _ in range(3):
                await conn.send(get("/cached", ("If-None-Match", '"v1"')))
                response = await conn.response()
                assert response.status == 304 and response.header("Transfer-Encoding") == []
    assert upstream.answered == 3


async def test_chunked_request_arrives_whole(stack: Stack, caller: Caller) -> None:
    """A chunked upload, written chunk by chunk with pauses, reaches the upstream whole."""
    pieces = [bytes([n]) * (1000 + n * 3001) for n in range(8)]
    head = [HOST, caller.authorization, ("Transfer-Encoding", "chunked")]
    async with raw_connection(port(stack)) as conn:
        await conn.send(request_bytes("POST", "/upload", head))
        for number, piece in enumerate(pieces):
            extension = b";n=%d" % number if number % 2 else b""
            await conn.send(b"%x%s\r\n%s\r\n" % (len(piece), extension, piece))
            await asyncio.sleep(0.02)
        await conn.send(b"0\r\n\r\n")
        response = await conn.response()
    assert response.status == 200
    assert json.loads(response.body) == uploaded(b"".join(pieces))
    assert stack.upstream.last.header("X-Keygate-User-Id") == [caller.user_id]


async def test_streamed_response_arrives_whole_and_in_order(stack: Stack, caller: Caller) -> None:
    """An upstream body sent piece by piece without a length reaches the client whole, in
    order, chunked or with a true Content-Length; the connection then serves another GET."""
    async with raw_connection(port(stack)) as conn:
        await conn.send(get("/stream?pieces=60", caller.authorization))
        response = await conn.response()
        await conn.send(get("/after", caller.authorization))
        after = await conn.response()
    assert response.status == 200 and response.body == stream_body(60)
    chunked = "chunked" in ",".join(response.header("Transfer-Encoding")).lower()
    assert chunked or response.header("Content-Length") == [str(len(response.body))]
    assert echoed(after)["path"] == "/after"


async def test_expect_continue_upload_arrives_whole(stack: Stack, caller: Caller) -> None:
    """``Expect: 100-continue``: the client is told to go on, and its upload arrives whole."""
    head = [HOST, caller.authorization, ("Content-Length", str(len(UPLOAD)))]
    async with raw_connection(port(stack)) as conn:
        await conn.send(request_bytes("POST", "/upload", [*head, ("Expect", "100-continue")]))
        interim = await conn.response()
        assert interim.status == 100, interim
        await conn.send(UPLOAD)
        final = await conn.response()
    assert final.status == 200 and json.loads(final.body) == uploaded(UPLOAD)


async def test_expect_continue_with_bad_token_is_refused(stack: Stack) -> None:
    """``Expect: 100-continue`` with an unknown token: the final 401 arrives without the body
    being sent, and nothing reaches the upstream."""
    head = [
        HOST,
        ("Authorization", f"Bearer {generate_token()[0]}"),
        ("Content-Length", str(len(UPLOAD))),
        ("Expect", "100-continue"),
    ]
    async with raw_connection(port(stack)) as conn:
        await conn.send(request_bytes("POST", "/upload", head))
        response = await conn.response()
        if response.status == 100:
            response = await conn.response()
    assert response.status == 401
    assert stack.upstream.requests == []
