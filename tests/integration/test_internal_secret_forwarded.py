"""W17: a management call forwarded for a token the gateway already knows, to an introspector
that refuses the gateway's internal secret (a rotation done in the wrong order)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from tests.harness.stack import API, StartIntrospector, StartStack

OTHER_SECRET = "a-different-internal-secret-0123456789abcdef"


def _split(good: str, bad: str) -> web.Application:
    """A real HTTP server in front of two introspectors: introspection goes to one on the
    gateway's secret, everything else to one on another secret (pods that cross a rotation)."""

    async def relay(request: web.Request) -> web.StreamResponse:
        target = good if request.path == "/introspect" else bad
        framing = ("host", "transfer-encoding", "content-length")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in framing}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, target + request.path_qs, headers=headers, data=await request.read()
            ) as answer,
        ):
            body = await answer.read()
            return web.Response(status=answer.status, body=body, headers=answer.headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


async def test_a_forwarded_call_refused_for_the_secret_is_not_a_401_for_the_client(
    start_stack: StartStack, start_introspector: StartIntrospector, aiohttp_server: Any
) -> None:
    """A token the gateway knows, forwarded to an introspector on another secret: the client
    must get a retryable 503, never a 401 that tells it to discard a good token."""
    on_secret = await start_introspector()
    on_other = await start_introspector(KEYGATE_INTERNAL_SECRET=OTHER_SECRET)
    url = lambda i: str(i.client.make_url("")).rstrip("/")  # noqa: E731
    server = await aiohttp_server(_split(url(on_secret), url(on_other)))
    stack = await start_stack(KEYGATE_INTROSPECTOR_URL=str(server.make_url("")).rstrip("/"))
    alice = await on_secret.user("alice@example.com")
    token = (await on_secret.create_ok(alice))["token"]
    bearer = {"Authorization": f"Bearer {token}"}

    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"name": "made while the secrets disagree"}'

    # A GET rides the relay; a chunked body is handed to aiohttp: both data paths.
    for response in (
        await stack.gateway.get(f"{API}/whoami", headers=bearer),
        await stack.gateway.post(
            f"{API}/api-tokens",
            data=chunked(),
            headers={**bearer, "Content-Type": "application/json"},
        ),
    ):
        body = await response.json()
        assert response.status == 503, body
        assert body["reason"] == "auth_unavailable"
        assert response.headers["Retry-After"] == "1"
