"""Route rules end to end: a routes file decides auth, scope, workspace binding and upstream."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from introspector.models import Role, User, Workspace
from keygate_cli.settings import load_settings
from keygate_core.envconfig import SettingsError
from keygate_core.token_format import generate_token
from tests.harness.stack import API, Stack, StartStack, gateway_env
from tests.harness.upstream import Upstream, create_upstream

REALM = 'Bearer realm="keygate"'

ROUTES = """
[[route]]
prefix = "/private/"
auth = "required"

[[route]]
prefix = "/private/health/"
auth = "none"

[[route]]
prefix = "/open/"
auth = "optional"

[[route]]
prefix = "/public/"
auth = "none"

[[route]]
prefix = "/team/"
auth = "required"
scope = "WORKSPACE"

[[route]]
prefix = "/ws/{{workspace}}/"
auth = "required"

[[route]]
prefix = "/billing/"
auth = "required"
workspace_header = "X-Workspace-Id"

[[route]]
prefix = "/other/"
upstream = "{other}"

[[route]]
prefix = "/api/platform/internal/"
upstream = "app"
auth = "none"
"""


@dataclass
class Routed:
    """An enterprise stack behind ROUTES, a second upstream, and one token per scope."""

    stack: Stack
    other: Upstream
    admin: User
    mine: Workspace
    theirs: Workspace
    tokens: dict[str, str]

    async def get(self, path: str, scope: str | None = None, **headers: str) -> Any:
        """GET ``path`` through the gateway, with the ``scope`` token when one is named."""
        if scope is not None:
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
        return await self.stack.gateway.get(path, headers=headers)


@pytest.fixture
async def routed(start_stack: StartStack, aiohttp_server: Any, tmp_path: Path) -> Routed:
    """The gateway with ROUTES, in the enterprise edition so broad tokens exist."""
    other_app, other = create_upstream()
    other_server = await aiohttp_server(other_app)
    routes = tmp_path / "routes.toml"
    other_url = str(other_server.make_url("")).rstrip("/")
    routes.write_text(ROUTES.format(other=other_url), encoding="utf-8")
    stack = await start_stack(
        introspector_env_extra={"KEYGATE_EDITION": "enterprise"}, KEYGATE_ROUTES_FILE=str(routes)
    )
    ki = stack.introspector
    admin = await ki.user("root@example.com", admin=True)
    mine = await ki.workspace("Mine", {admin: Role.ADMIN})
    theirs = await ki.workspace("Theirs", {admin: Role.ADMIN})
    tokens = {
        "PERSONAL": await stack.token_for(admin),
        "WORKSPACE": await stack.token_for(admin, scope="WORKSPACE", workspaceId=str(mine.id)),
        "ORGANIZATION": await stack.token_for(admin, scope="ORGANIZATION"),
    }
    return Routed(stack, other, admin, mine, theirs, tokens)


async def test_required_route_without_credentials_is_401(routed: Routed) -> None:
    """auth=required and no credential: 401 with a bare Bearer challenge, upstream untouched."""
    response = await routed.get("/private/report", Cookie="sid=valid-someone")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == REALM
    assert (await response.json())["reason"] == "unauthenticated"
    assert routed.stack.upstream.requests == []


async def test_required_route_with_a_token_reaches_the_upstream(routed: Routed) -> None:
    """auth=required with a valid token: forwarded with the token owner's identity."""
    response = await routed.get("/private/report", "PERSONAL")
    assert response.status == 200
    assert routed.stack.upstream.last.header("X-Keygate-User-Id") == [str(routed.admin.id)]


async def test_optional_route_lets_anonymous_through(routed: Routed) -> None:
    """auth=optional without a credential: the upstream sees an anonymous request."""
    response = await routed.get("/open/page", Cookie="sid=abc")
    assert response.status == 200
    seen = routed.stack.upstream.last
    assert seen.raw_path == "/open/page"
    assert seen.header("X-Keygate-Auth-Method") == ["anonymous"]
    assert seen.header("Cookie") == ["sid=abc"]


async def test_longer_prefix_overrides_a_required_parent(routed: Routed) -> None:
    """/private/health/ (auth=none) inside /private/ (required) is reachable anonymously."""
    assert (await routed.get("/private/health/live")).status == 200
    assert routed.stack.upstream.last.raw_path == "/private/health/live"


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {generate_token()[0]}", "Bearer not-a-token", "bearer kg_short"],
    ids=["unknown-token", "foreign-token", "malformed-token"],
)
async def test_none_route_ignores_a_bad_token_and_strips_identity(
    routed: Routed, authorization: str
) -> None:
    """auth=none: a bad bearer is not checked or forwarded, and spoofed identity is stripped."""
    before = await routed.stack.introspector.metrics()
    response = await routed.stack.gateway.get(
        "/public/page",
        headers=[
            ("Authorization", authorization),
            ("X-Keygate-User-Id", "spoofed"),
            ("X_Keygate_User_Id", "spoofed"),
            ("x-keygate-auth-method", "token"),
            ("X-Keygate-Token-Scope", "ORGANIZATION"),
        ],
    )
    assert response.status == 200
    seen = routed.stack.upstream.last
    assert seen.header("Authorization") == []
    assert seen.header("X-Keygate-User-Id") == []
    assert seen.header("X_Keygate_User_Id") == []
    assert seen.header("X-Keygate-Token-Scope") == []
    assert seen.header("X-Keygate-Auth-Method") == ["anonymous"]
    assert "spoofed" not in repr(seen.headers)
    after = await routed.stack.introspector.metrics()
    assert _introspections(after) == _introspections(before)
    refused = await routed.stack.gateway.get("/open/page", headers={"Authorization": authorization})
    assert refused.status == 401


async def test_a_passthrough_request_reaches_the_upstream_as_an_anonymous_one_does(
    routed: Routed,
) -> None:
    """auth=none requests skip the stages (the relay's shorter path for them): the upstream
    gets field for field the head an anonymous request gets on an optional route, and the
    client the same answer fields."""
    headers = [
        ("Accept", "*/*"),
        ("X-Keygate-User-Id", "spoofed"),
        ("X-Real-IP", "203.0.113.9"),
        ("Cookie", "theme=dark"),
        ("X-Note", "café"),
    ]
    heads, answers = [], []
    for path in ("/public/page", "/open/page"):
        response = await routed.stack.gateway.get(path, headers=headers)
        assert response.status == 200
        seen = routed.stack.upstream.last
        request_ids = seen.header("X-Request-Id")
        assert request_ids == [response.headers["X-Request-Id"]]
        heads.append([(n, v) for n, v in seen.headers if n.lower() != "x-request-id"])
        answers.append([n for n in response.headers if n.lower() not in ("date", "x-request-id")])
    assert heads[0] == heads[1]
    assert answers[0] == answers[1]
    assert ("X-Keygate-Auth-Method", "anonymous") in heads[0]


@pytest.mark.parametrize(
    ("scope", "status"),
    [(None, 401), ("PERSONAL", 403), ("WORKSPACE", 200), ("ORGANIZATION", 200)],
    ids=["anonymous", "personal", "workspace", "organization"],
)
async def test_scope_route_needs_a_broad_enough_token(
    routed: Routed, scope: str | None, status: int
) -> None:
    """scope=WORKSPACE: a PERSONAL token is 403 insufficient_scope; broader tokens pass."""
    response = await routed.get("/team/roster", scope)
    assert response.status == status
    if status == 403:
        assert response.headers["WWW-Authenticate"] == (
            f'{REALM}, error="insufficient_scope", scope="WORKSPACE"'
        )
        assert (await response.json())["reason"] == "insufficient_scope"
    assert len(routed.stack.upstream.requests) == (1 if status == 200 else 0)


@pytest.mark.parametrize(
    ("binding", "scope", "workspace", "status"),
    [
        ("path", "WORKSPACE", "mine", 200),
        ("path", "WORKSPACE", "theirs", 403),
        ("path", "ORGANIZATION", "theirs", 200),
        ("path", "PERSONAL", "theirs", 200),
        ("header", "WORKSPACE", "mine", 200),
        ("header", "WORKSPACE", "theirs", 403),
        ("header", "ORGANIZATION", "theirs", 200),
        ("header", "PERSONAL", "theirs", 200),
    ],
    ids=[
        "path-workspace-match",
        "path-workspace-mismatch",
        "path-organization-any",
        "path-personal-upstream-decides",
        "header-workspace-match",
        "header-workspace-mismatch",
        "header-organization-any",
        "header-personal-upstream-decides",
    ],
)
async def test_workspace_binding(
    routed: Routed, binding: str, scope: str, workspace: str, status: int
) -> None:
    """A WORKSPACE token only reaches its own workspace, named by path segment or header."""
    ws_id = str((routed.mine if workspace == "mine" else routed.theirs).id)
    if binding == "path":
        response = await routed.get(f"/ws/{ws_id}/orders", scope)
    else:
        response = await routed.get("/billing/invoices", scope, **{"X-Workspace-Id": ws_id})
    assert response.status == status, await response.text()
    if status == 403:
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        assert routed.stack.upstream.requests == []
    else:
        assert routed.stack.upstream.last.header("X-Keygate-Token-Scope") == [scope]


async def test_duplicated_workspace_header_is_refused(routed: Routed) -> None:
    """Two workspace headers (own first, foreign second) are refused, never forwarded."""
    headers = [
        ("Authorization", f"Bearer {routed.tokens['WORKSPACE']}"),
        ("X-Workspace-Id", str(routed.mine.id)),
        ("X-Workspace-Id", str(routed.theirs.id)),
    ]
    response = await routed.stack.gateway.get("/billing/invoices", headers=headers)
    assert response.status in (400, 403)
    assert routed.stack.upstream.requests == []


async def test_route_upstream_url_sends_traffic_elsewhere(routed: Routed) -> None:
    """upstream = <URL>: the request reaches that server, with identity, and not the app."""
    response = await routed.get("/other/thing?q=1", "PERSONAL")
    assert response.status == 200
    assert routed.stack.upstream.requests == []
    seen = routed.other.last
    assert seen.raw_path == "/other/thing?q=1"
    assert seen.header("X-Keygate-User-Id") == [str(routed.admin.id)]
    assert seen.header("Authorization") == []


async def test_file_cannot_open_keygate_api(routed: Routed) -> None:
    """A file rule opening /api/platform/internal/ is ignored: introspector, auth required."""
    response = await routed.get(f"{API}/whoami")
    assert response.status == 401
    ok = await routed.get(f"{API}/whoami", "PERSONAL")
    assert ok.status == 200
    assert (await ok.json())["userId"] == str(routed.admin.id)
    assert routed.stack.upstream.requests == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[[route]]\nprefix = "/x/"\nauht = "required"\n', "unknown key 'auht'"),
        ('[[route]]\nprefix = "/x/"\nscope = "ROOT"\n', "'scope'"),
        ('[[route]]\nprefix = "/x/"\ncase_sensitive = "no"\n', "route #1: 'case_sensitive'"),
        ('[[route]]\nprefix = "/x/\n', "cannot read routes file"),
        (None, "cannot read routes file"),
    ],
    ids=["unknown-key", "bad-scope", "bad-case-sensitive", "bad-toml", "missing-file"],
)
def test_bad_routes_file_refuses_to_start(tmp_path: Path, text: str | None, fragment: str) -> None:
    """create_app raises a SettingsError naming KEYGATE_ROUTES_FILE and the problem."""
    routes = tmp_path / "routes.toml"
    if text is not None:
        routes.write_text(text, encoding="utf-8")
    env = gateway_env(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "redis://127.0.0.1:1/0",
        KEYGATE_ROUTES_FILE=str(routes),
    )
    settings = load_settings(GatewaySettings, env)
    with pytest.raises(SettingsError) as caught:
        create_app(settings)
    assert caught.value.variable == "KEYGATE_ROUTES_FILE"
    assert str(caught.value).startswith("KEYGATE_ROUTES_FILE: ")
    assert fragment in str(caught.value)


def _introspections(metrics: str) -> float:
    """How many /introspect calls the introspector has served, whatever their outcome."""
    count = "keygate_introspector_http_request_duration_seconds_count"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(count) and 'route="/introspect"' in line
    )
