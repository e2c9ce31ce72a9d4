"""Workspace-header integrity: a WORKSPACE token reaches the upstream only with its own workspace.

A route binds its workspace to ``X-Workspace-Id``. Hypothesis writes whole requests with the
header in every case and ``_`` spelling (CGI-style servers read ``X_Workspace_Id`` as the same
header), repeated, naming the token's workspace or another, named in ``Connection``, or left out,
mixed with spoofed identity headers, on both data paths. Whatever the mix, what the upstream
receives is one ``X-Workspace-Id`` with the token's own workspace, or nothing at all.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from introspector.models import Role
from tests.harness.figures import Figures
from tests.harness.stack import StartStack
from tests.reliability.rawhttp import exchange_sync, request_bytes
from tests.reliability.test_header_integrity import SPOOFED, canonical, respelled

HEADER = "X-Workspace-Id"
ROUTES = f"""
[[route]]
prefix = "/reports/"
auth = "required"
workspace_header = "{HEADER}"
"""
MINE, THEIRS = "mine", "theirs"

#: The workspace header in any spelling, naming the token's workspace or another (padded too).
WORKSPACE_HEADERS = st.one_of(
    st.tuples(respelled(HEADER), st.just(MINE)).map(lambda header: [header]),
    st.lists(
        st.tuples(
            respelled(HEADER), st.sampled_from([MINE, THEIRS, f" {MINE} ", f" {THEIRS}", ""])
        ),
        max_size=3,
    ),
)
#: Sometimes a Connection header naming the workspace header in some spelling.
CONNECTION = st.lists(respelled(HEADER), max_size=1).map(
    lambda names: [("Connection", names[0])] if names else []
)


def header_sets() -> st.SearchStrategy[list[tuple[str, str]]]:
    """Workspace, Connection and spoofed identity headers, mixed in any order."""
    return (
        st.tuples(WORKSPACE_HEADERS, CONNECTION, SPOOFED)
        .map(lambda parts: [h for part in parts for h in part])
        .flatmap(st.permutations)
    )


async def test_workspace_header_sets_never_leave_the_tokens_workspace(
    start_stack: StartStack, tmp_path: Path, figures: Figures
) -> None:
    """300 generated sets: no 5xx; the upstream sees one X-Workspace-Id, the token's own."""
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES, encoding="utf-8")
    stack = await start_stack(
        introspector_env_extra={"KEYGATE_EDITION": "enterprise"},
        KEYGATE_ROUTES_FILE=str(routes),
        KEYGATE_RATE_LIMIT_PER_MINUTE="100000",
    )
    ki = stack.introspector
    admin = await ki.user("root@example.com", admin=True)
    mine = await ki.workspace("Mine", {admin: Role.ADMIN})
    theirs = await ki.workspace("Theirs", {admin: Role.ADMIN})
    ids = {MINE: str(mine.id), THEIRS: str(theirs.id)}
    token = await stack.token_for(admin, scope="WORKSPACE", workspaceId=ids[MINE])
    port = stack.gateway.port
    assert port is not None
    counts = {"requests": 0, "forwarded": 0, "refused": 0}

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(headers=header_sets(), chunked=st.booleans())
    def check(headers: list[tuple[str, str]], chunked: bool) -> None:
        before = len(stack.upstream.requests)
        named = [(k, v.replace(MINE, ids[MINE]).replace(THEIRS, ids[THEIRS])) for k, v in headers]
        sent = [("Host", "gateway"), ("Authorization", f"Bearer {token}"), *named]
        if chunked:  # aiohttp's path; the relay hands chunked requests over
            sent.append(("Transfer-Encoding", "chunked"))
        sent.append(("Connection", "close"))
        data = request_bytes("POST" if chunked else "GET", "/reports/q1", sent, b"0\r\n\r\n")
        (response,) = exchange_sync(port, data if chunked else data.removesuffix(b"0\r\n\r\n"))
        counts["requests"] += 1
        assert response.status < 500, (response.status, response.body[:300])
        copies = [v.strip() for k, v in named if canonical(k) == canonical(HEADER)]
        hop = [v for k, v in named if k.lower() == "connection"]
        if copies == [ids[MINE]] and not hop:
            assert response.status == 200, (headers, response.body[:300])
        if len(stack.upstream.requests) == before:
            counts["refused"] += 1
            return
        counts["forwarded"] += 1
        received = stack.upstream.requests[-1].headers
        seen = [(k, v) for k, v in received if canonical(k) == canonical(HEADER)]
        assert seen == [(HEADER, ids[MINE])], (headers, received)

    await asyncio.to_thread(check)
    figures.update(counts)
    assert counts["forwarded"] > 20 and counts["refused"] > 20, counts
