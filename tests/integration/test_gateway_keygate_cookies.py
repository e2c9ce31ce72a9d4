"""keygate's own cookies are keygate's alone (security review, finding 9).

``kg_session`` opens the management API to whoever holds it, ``kg_csrf``/``kg_ui_csrf`` back
the admin UI's form tokens and ``kg_device`` exempts its browser from per-e-mail sign-in limits.
The gateway removes them (in both spellings, ``__Host-`` included) from the ``Cookie`` header it
sends to the app and to URL upstreams, and drops an upstream's ``Set-Cookie`` that would set
one, on both data paths: the relay (plain requests) and aiohttp (a chunked body, which the relay
hands over). keygate's own services still get them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.harness.stack import Stack, StartStack
from tests.harness.upstream import Upstream, create_upstream
from tests.reliability.rawhttp import RawResponse, exchange, request_bytes

PATHS = pytest.mark.parametrize("chunked", [False, True], ids=["relay", "aiohttp"])

#: Two Cookie headers as a browser (or a hand-written client) might send them.
SENT = [
    "kg_session=stolen; app=1;kg_session_x=keep ;  my_kg_session=keep; __Host-kg_session=s2",
    "kg_csrf=c; KG_UI_CSRF=u; theme=dark; __host-kg_ui_csrf=v; kg_device=d; __Host-kg_device=e",
    "KG_Session=z",
]
#: What the app may see of them: its own cookies, in order, names that merely contain ours too.
KEPT = ["app=1; kg_session_x=keep; my_kg_session=keep", "theme=dark"]


async def send(
    stack: Stack, target: str, headers: list[tuple[str, str]], *, chunked: bool
) -> RawResponse:
    """GET ``target`` through the gateway (a chunked GET, for aiohttp's path)."""
    port = stack.gateway.port
    assert port is not None
    sent = [("Host", "gateway"), *headers, ("Connection", "close")]
    if chunked:
        data = request_bytes("GET", target, [*sent, ("Transfer-Encoding", "chunked")], b"0\r\n\r\n")
    else:
        data = request_bytes("GET", target, sent)
    (response,) = await exchange(port, data, max_responses=1)
    return response


@pytest.fixture
async def routed(
    start_stack: StartStack, aiohttp_server: Any, tmp_path: Path
) -> tuple[Stack, Upstream, Upstream]:
    """A stack whose /other/ goes to a second upstream and whose admin UI is a recording one."""
    servers = []
    for _ in range(2):
        app, record = create_upstream()
        server = await aiohttp_server(app)
        servers.append((str(server.make_url("")).rstrip("/"), record))
    (other_url, other), (ui_url, ui) = servers
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f'[[route]]\nprefix = "/other/"\nupstream = "{other_url}"\n', encoding="utf-8"
    )
    stack = await start_stack(KEYGATE_ROUTES_FILE=str(routes), KEYGATE_ADMIN_UI_URL=ui_url)
    return stack, other, ui


@PATHS
async def test_keygate_cookies_never_reach_the_app_or_a_url_upstream(
    routed: tuple[Stack, Upstream, Upstream], chunked: bool
) -> None:
    """The app and a route's URL upstream get every cookie but keygate's, in order."""
    stack, other, _ = routed
    cookies = [("Cookie", value) for value in SENT]
    for path, record in (("/x", stack.upstream), ("/other/x", other)):
        response = await send(stack, path, cookies, chunked=chunked)
        assert response.status == 200
        assert record.last.header("Cookie") == KEPT, path


@PATHS
async def test_a_cookie_header_of_keygate_cookies_only_is_removed(
    routed: tuple[Stack, Upstream, Upstream], chunked: bool
) -> None:
    """A Cookie header with nothing but keygate's cookies does not reach the app at all."""
    stack, _, _ = routed
    response = await send(stack, "/x", [("Cookie", "kg_session=s; kg_csrf=c")], chunked=chunked)
    assert response.status == 200
    assert stack.upstream.last.header("Cookie") == []


async def test_keygate_services_still_get_keygate_cookies(
    routed: tuple[Stack, Upstream, Upstream],
) -> None:
    """The admin UI needs its cookies: they reach it untouched."""
    stack, _, ui = routed
    response = await send(stack, "/settings/api-keys", [("Cookie", SENT[0])], chunked=False)
    assert response.status == 200
    assert ui.last.header("Cookie") == [SENT[0]]


SET = [
    "kg_session=attackers-session; Path=/; HttpOnly",
    "__Host-kg_session=x; Path=/; Secure",
    "=kg_session=nameless; Path=/",
    " KG_CSRF=y",
    "kg_ui_csrf",
    "__Host-kg_device=v1.x; Path=/; Secure",
    "kg_session_theme=dark; Path=/",
    "my_kg_session=1",
]


@PATHS
async def test_an_upstream_cannot_set_keygate_cookies(
    routed: tuple[Stack, Upstream, Upstream], chunked: bool
) -> None:
    """Set-Cookie for keygate's cookies (any spelling, nameless too) is dropped; others pass."""
    stack, _, _ = routed
    query = "&".join(f"set={quote(value)}" for value in SET)
    response = await send(stack, f"/cookies?{query}", [], chunked=chunked)
    assert response.status == 200
    assert response.header("Set-Cookie") == [
        "a=1; Path=/",
        "b=2; Path=/",
        "kg_session_theme=dark; Path=/",
        "my_kg_session=1",
    ]
