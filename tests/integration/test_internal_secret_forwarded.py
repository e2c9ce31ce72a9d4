"""W17: a management call forwarded for a token the gateway already knows, to an introspector
that refuses the gateway's internal secret (a rotation done in the wrong order)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.harness.stack import API, StartIntrospector, StartStack

OTHER_SECRET = "a-different-internal-secret-0123456789abcdef"


def _split(good: str, bad: str) -> web.Application:
    """A real HTTP server in front of two introspectors: introspection goes to one on the
    gateway's secret, everything else to one on another secret (pods that cross a rotation)."""

    async def relay(request: web.Request) -> web.StreamResponse:
        target = good if request.path == "/introspect" else bad
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
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


@pytest.mark.xfail(
    strict=True,
    reason="W17 is open: the gateway passes the introspector's 401 internal_secret_refused "
    "through to the client; it should answer 503 (remove this mark with the fix)",
)
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
    response = await stack.gateway.get(
        f"{API}/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 503, await response.text()
