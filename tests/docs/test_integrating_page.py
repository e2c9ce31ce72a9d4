"""integrating.md: its session-check endpoints work behind a real gateway, and the two ids are
mapped as it says — ``X-Keygate-External-Id`` is the app's id on session *and* token requests.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from keygate_demo.server_process import free_port, wait_for_port
from tests.docs.markdown_blocks import DOCS, CodeBlock, code_blocks
from tests.harness.stack import StartStack

PAGE = DOCS / "integrating.md"
BLOCKS = {b.title: b for b in code_blocks(PAGE) if b.title}
#: The runnable examples: how to run each.
RUNNABLE = {"session_check.py": [sys.executable], "session-check.js": ["node"]}
#: What a client might send to pass itself off as an app user.
FORGED = {"X-Keygate-External-Id": "1", "X_Keygate_External_Id": "1"}


@asynccontextmanager
async def _serving(block: CodeBlock, tmp_path: Path) -> AsyncIterator[str]:
    """Run an example endpoint on a free port; its URL. Stopped however the test ends."""
    assert block.title is not None
    script = tmp_path / block.title
    script.write_text(block.text, encoding="utf-8")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *RUNNABLE[block.title],
        str(script),
        env={"PATH": "/usr/bin:/bin", "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(wait_for_port, port, 10.0)
        yield f"http://127.0.0.1:{port}/internal/keygate-session"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


@pytest.mark.parametrize("title", sorted(RUNNABLE))
async def test_session_check_example_behind_a_real_gateway(
    title: str, start_stack: StartStack, tmp_path: Path
) -> None:
    """The app's user id reaches the app as both user id and external id; a wrong cookie is
    anonymous; a client cannot send the external id itself, in any spelling."""
    async with _serving(BLOCKS[title], tmp_path) as url:
        stack = await start_stack(
            KEYGATE_SESSION_AUTHENTICATOR="upstream", KEYGATE_SESSION_CHECK_URL=url
        )
        for cookie, method, app_id in (("abc123", "session", ["42"]), ("wrong", "anonymous", [])):
            response = await stack.gateway.get(
                "/orders", headers={"Cookie": f"session={cookie}", **FORGED}
            )
            assert response.status == 200
            seen = stack.upstream.last
            assert seen.header("X-Keygate-Auth-Method") == [method]
            assert seen.header("X-Keygate-User-Id") == app_id
            assert seen.header("X-Keygate-External-Id") == app_id
            assert seen.header("X_Keygate_External_Id") == []
        assert seen.header("X-Keygate-User-Email") == []


async def _link(database_url: str, email: str, external_id: str) -> None:
    """``keygate users link``, as the page tells an operator to run it."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    process = await asyncio.create_subprocess_exec(
        "keygate",
        "users",
        "link",
        "--email",
        email,
        "--external-id",
        external_id,
        env={**env, "KEYGATE_DATABASE_URL": database_url},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()


@pytest.mark.parametrize("header", ["X-Keygate-External-Id", "X-App-User-Id"])
async def test_token_requests_carry_the_linked_app_id(
    header: str, start_stack: StartStack, database_url: str
) -> None:
    """The two-ids fix: a token of a person linked to an app account reaches the app with
    keygate's id in X-Keygate-User-Id and the app's id in the external-id header (renamable
    like the others); an unlinked owner's token has none; a client cannot send it."""
    renamed = (
        {}
        if header == "X-Keygate-External-Id"
        else {"KEYGATE_IDENTITY_HEADERS": f"external_id={header}"}
    )
    stack = await start_stack(**renamed)
    alice = await stack.introspector.user("alice@example.com")
    bob = await stack.introspector.user("bob@example.com")
    await _link(database_url, "alice@example.com", "42")
    for user, app_id in ((alice, ["42"]), (bob, [])):
        token = await stack.token_for(user)
        response = await stack.gateway.get(
            "/orders", headers={"Authorization": f"Bearer {token}", header: "1", **FORGED}
        )
        assert response.status == 200
        seen = stack.upstream.last
        assert seen.header("X-Keygate-User-Id") == [str(user.id)]
        assert seen.header(header) == app_id
        assert seen.header("X_Keygate_External_Id") == []


def test_framework_examples_are_valid_code() -> None:
    """Django and Flask need their frameworks to run, Express its packages (none are keygate
    dependencies): at least each must be code that parses."""
    for title in ("Django: views.py", "Flask: app.py"):
        compile(BLOCKS[title].text, title, "exec")
    checked = subprocess.run(
        ["node", "--check", "-"],
        input=BLOCKS["Express: app.js"].text,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
