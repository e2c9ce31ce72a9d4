"""A route's workspace header is checked on the header set the upstream receives, and the
upstream receives exactly the value that was checked (security review, finding 5).

The rule binds ``/reports/`` to ``X-Workspace-Id``. A WORKSPACE token bound to workspace *mine*
must not reach *theirs* through a second spelling (``X_Workspace_Id``, which CGI-style servers
read as the same header), a ``Connection`` header that makes the gateway drop the checked copy,
or by leaving the header out. Every case runs on both data paths: the relay (a plain request)
and aiohttp (a chunked body, which the relay hands over).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from introspector.models import Role
from tests.harness.stack import Stack, StartStack
from tests.reliability.rawhttp import RawResponse, exchange, request_bytes

ROUTES = """
[[route]]
prefix = "/reports/"
auth = "required"
workspace_header = "X-Workspace-Id"
"""
MINE, THEIRS = "mine", "theirs"


@dataclass
class Bound:
    """A stack behind ROUTES, the two workspaces' ids and a token per scope."""

    stack: Stack
    ids: dict[str, str]
    tokens: dict[str, str]

    async def send(
        self, scope: str, headers: list[tuple[str, str]], *, chunked: bool
    ) -> RawResponse:
        """GET (relay) or chunked POST (aiohttp) ``/reports/q1`` with the ``scope`` token and
        ``headers``, whose values name workspaces (``mine``/``theirs``) by their ids."""
        port = self.stack.gateway.port
        assert port is not None
        sent = [
            ("Host", "gateway"),
            ("Authorization", f"Bearer {self.tokens[scope]}"),
            *((name, self.ids.get(value, value)) for name, value in headers),
        ]
        if chunked:
            data = request_bytes(
                "POST", "/reports/q1", [*sent, ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"
            )
        else:
            data = request_bytes("GET", "/reports/q1", sent)
        (response,) = await exchange(port, data, max_responses=1)
        return response

    def forwarded_workspace_headers(self) -> list[tuple[str, str]]:
        """Every spelling of the workspace header the upstream last received."""
        return [
            (name, value)
            for name, value in self.stack.upstream.last.headers
            if name.lower().replace("_", "-") == "x-workspace-id"
        ]


@pytest.fixture
async def bound(start_stack: StartStack, tmp_path: Path) -> Bound:
    """An enterprise stack (so WORKSPACE and ORGANIZATION tokens exist) behind ROUTES."""
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES, encoding="utf-8")
    stack = await start_stack(
        introspector_env_extra={"KEYGATE_EDITION": "enterprise"}, KEYGATE_ROUTES_FILE=str(routes)
    )
    ki = stack.introspector
    admin = await ki.user("root@example.com", admin=True)
    mine = await ki.workspace("Mine", {admin: Role.ADMIN})
    theirs = await ki.workspace("Theirs", {admin: Role.ADMIN})
    tokens = {
        "WORKSPACE": await stack.token_for(admin, scope="WORKSPACE", workspaceId=str(mine.id)),
        "ORGANIZATION": await stack.token_for(admin, scope="ORGANIZATION"),
    }
    return Bound(stack, {MINE: str(mine.id), THEIRS: str(theirs.id)}, tokens)


PATHS = pytest.mark.parametrize("chunked", [False, True], ids=["relay", "aiohttp"])


@PATHS
@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ([("X-Workspace-Id", MINE), ("X_Workspace_Id", THEIRS)], 400, "duplicate_header"),
        ([("X_Workspace_Id", THEIRS), ("X-Workspace-Id", MINE)], 400, "duplicate_header"),
        ([("X_Workspace_Id", THEIRS)], 403, "insufficient_scope"),
        ([("X-Workspace-Id", MINE), ("Connection", "X-Workspace-Id")], 400, "invalid_header"),
        ([("Connection", "x_workspace_id"), ("X-Workspace-Id", MINE)], 400, "invalid_header"),
        ([], 400, "missing_header"),
    ],
    ids=[
        "underscore-spelling-after",
        "underscore-spelling-before",
        "underscore-spelling-alone",
        "named-in-connection",
        "named-in-connection-other-spelling",
        "missing",
    ],
)
async def test_workspace_token_cannot_leave_its_workspace_through_the_header(
    bound: Bound, headers: list[tuple[str, str]], status: int, reason: str, chunked: bool
) -> None:
    """Another spelling, a Connection-named copy or no header at all: refused, nothing sent."""
    response = await bound.send("WORKSPACE", headers, chunked=chunked)
    assert response.status == status, response.body[:300]
    assert f'"reason":"{reason}"' in response.body.decode().replace(" ", "")
    if status == 400:  # the problem names the field
        assert "X-Workspace-Id" in response.body.decode()
    assert bound.stack.upstream.requests == []


@PATHS
@pytest.mark.parametrize(
    ("scope", "sent", "forwarded"),
    [
        ("WORKSPACE", [("X-Workspace-Id", MINE)], MINE),
        ("WORKSPACE", [("x_workspace_id", MINE)], MINE),
        ("ORGANIZATION", [("X_WORKSPACE_ID", THEIRS)], THEIRS),
    ],
    ids=["workspace-plain", "workspace-underscore-spelling", "organization-any-workspace"],
)
async def test_upstream_receives_exactly_the_checked_value(
    bound: Bound, scope: str, sent: list[tuple[str, str]], forwarded: str, chunked: bool
) -> None:
    """What was checked is what the upstream reads: one header, the configured spelling."""
    response = await bound.send(scope, sent, chunked=chunked)
    assert response.status == 200, response.body[:300]
    assert bound.forwarded_workspace_headers() == [("X-Workspace-Id", bound.ids[forwarded])]


async def test_missing_header_is_the_upstreams_call_for_unbound_tokens(bound: Bound) -> None:
    """Only a WORKSPACE token needs the header: an ORGANIZATION token without it passes."""
    response = await bound.send("ORGANIZATION", [], chunked=False)
    assert response.status == 200
    assert bound.forwarded_workspace_headers() == []
