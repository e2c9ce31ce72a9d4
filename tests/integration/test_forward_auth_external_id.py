"""The linked app account's id (``X-Keygate-External-Id``) through both forward-auth recipes:
keygate's value reaches the app, a client's own value never does, whatever keygate answered.

The recipes copy each identity header from keygate's answer one by one, so a header keygate
added later is easy to forget in them; behind nginx a forgotten one passes the client's copy
straight to the app.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from introspector import users
from introspector.models import Actor
from tests.harness import caddy, nginx
from tests.harness.cases import SPOOFED
from tests.harness.servers import free_port
from tests.harness.stack import Stack

#: The client's own copies, in the spellings an app server might fold into the real name.
FORGED = [("X-Keygate-External-Id", SPOOFED), ("x-keygate-external-id", SPOOFED)]
Proxy = Callable[[Stack], str]


def _host_port(url: str) -> str:
    parsed = URL(url)
    return f"{parsed.host}:{parsed.port}"


@pytest.fixture(params=["nginx", "caddy"])
def proxy(request: pytest.FixtureRequest) -> Iterator[Proxy]:
    """Starts the named proxy's recipe in front of a stack; its base URL. Stopped afterwards."""
    running: list[nginx.NginxServer | caddy.CaddyServer] = []

    def start(stack: Stack) -> str:
        port = free_port()
        servers = {"nginx": (nginx, f"127.0.0.1:{port}"), "caddy": (caddy, f"http://:{port}")}
        module, listen = servers[request.param]
        recipe = "keygate-forward-auth.conf" if module is nginx else "keygate-forward-auth.caddy"
        site = nginx.render(
            (module.DEPLOY_DIR / recipe).read_text(),
            {
                "LISTEN": listen,
                "KEYGATE": _host_port(str(stack.gateway.make_url(""))),
                "APP": _host_port(stack.upstream_url),
            },
        )
        base = Path(tempfile.mkdtemp(prefix=f"keygate-test-{request.param}-"))
        server_class = nginx.NginxServer if module is nginx else caddy.CaddyServer
        server = server_class(base, site, port=port)
        running.append(server)
        server.start()
        return server.url

    yield start
    for server in running:
        server.stop()


async def test_the_app_gets_keygates_external_id_never_the_clients(
    stack: Stack, proxy: Proxy
) -> None:
    alice = await stack.introspector.user("alice@example.com")
    await users.link_external(
        stack.introspector.db, Actor.operator(), email=alice.email, external_id="42"
    )
    bob = await stack.introspector.user("bob@example.com")
    url = proxy(stack)
    async with aiohttp.ClientSession() as http:
        for user, expected in ((alice, ["42"]), (bob, []), (None, [])):
            bearer = (
                {} if user is None else {"Authorization": f"Bearer {await stack.token_for(user)}"}
            )
            async with http.get(f"{url}/orders", headers=[*bearer.items(), *FORGED]) as response:
                assert response.status == 200, await response.text()
            seen = stack.upstream.last
            assert seen.header("X-Keygate-External-Id") == expected, user
            assert SPOOFED not in repr(seen.headers)
