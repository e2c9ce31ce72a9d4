"""The operator pages' commands run, and what they quote is what the code writes.

* troubleshooting.md: every log line and metric in its "What keygate says" column exists;
* backup.md: its back-up, restore and cache-emptying commands, run against the test Postgres and
  Redis, bring back a working token — and a token revoked after the backup, as the page warns;
* rotation.md: its curl steps rotate a token through a live gateway.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import uuid
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from introspector.app import create_app as create_introspector
from introspector.settings import IntrospectorSettings
from keygate_cli.settings import load_settings
from keygate_demo.embedded import PostgresServer
from tests.docs.live import Live
from tests.docs.markdown_blocks import DOCS, CodeBlock, code_blocks, table_rows
from tests.docs.test_operator_guides import exported_series, metric_names
from tests.harness.stack import INTERNAL_SECRET, Introspector, introspector_env

ROOT = DOCS.parent
OPERATIONS = DOCS / "operations"
SOURCES = ("gateway", "introspector", "admin_ui", "keygate_core", "keygate_cli", "keygate_demo")
_SPAN = re.compile(r"(`+)\s?(.+?)\s?\1")
_METRIC = re.compile(r"^(keygate_[a-z0-9_]+)(?:\{(.*)\})?$")


def _string_constants() -> list[str]:
    """Every string literal of keygate's packages (adjacent literals joined, f-strings in
    their literal parts), plus the compose file, whose messages Compose prints."""
    found = [(ROOT / "docker-compose.yml").read_text(encoding="utf-8")]
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.append(node.value)
    return found


def _quoted() -> list[str]:
    """The code spans of the troubleshooting tables' "What keygate says" column."""
    text = (OPERATIONS / "troubleshooting.md").read_text(encoding="utf-8")
    spans: list[str] = []
    for table in re.findall(r"(?:^\|.*\n)+", text, re.M):
        rows = table_rows(table)
        assert rows[0][1] == "What keygate says", rows[0]
        for row in rows[1:]:
            spans += [m[2] for m in _SPAN.finditer(row[1])]
    return spans


def test_troubleshooting_quotes_what_the_code_writes() -> None:
    """Each quoted metric is exported with the labels shown; each quoted message (``…`` for
    the parts that vary) is in keygate's source, so a reworded log line fails this test."""
    constants = _string_constants()
    names, series = metric_names(), exported_series()
    quoted = _quoted()
    assert len(quoted) >= 15, quoted
    for span in quoted:
        metric = _METRIC.match(span)
        if metric:
            assert metric[1] in names, f"not an exported metric: {span}"
            labels = re.findall(r"([a-z_]+)=", metric[2] or "")
            assert set(labels) <= set(series.get(metric[1], ())), f"unknown label: {span}"
            continue
        for fragment in filter(None, (f.strip() for f in span.split("…"))):
            assert any(fragment in c for c in constants), f"not in the code: {fragment!r}"


def _block(page: Path, title: str) -> CodeBlock:
    found = [b for b in code_blocks(page) if b.title == title]
    assert len(found) == 1, f"{page.name}: one block titled {title!r}"
    return found[0]


async def _run(block: CodeBlock, env: dict[str, str], cwd: Path) -> str:
    """Run a shell block as a reader would; its standard output. Asynchronously: the servers
    it talks to run on this test's event loop."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        block.text,
        env=env,
        cwd=cwd,
        stdout=PIPE,
        stderr=PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"{block.where}: {err.decode()}"
    return out.decode()


async def _introspect(introspector: Any, token: str) -> bool:
    response = await introspector.post(
        "/introspect", data={"token": token}, headers={"X-Keygate-Internal-Secret": INTERNAL_SECRET}
    )
    assert response.status == 200
    active: bool = (await response.json())["active"]
    return active


async def test_backup_and_restore_as_the_page_says(
    introspector: Introspector,
    database_url: str,
    redis_url: str,
    pg_server: PostgresServer,
    aiohttp_client: Any,
    tmp_path: Path,
) -> None:
    """Back up, restore into an empty database, empty the token cache: a token from before
    the backup authenticates on the restored database, and one revoked after it is active
    again (the page says to revoke it once more)."""
    user = await introspector.user("backup@example.com")
    kept = (await introspector.create_ok(user, name="kept"))["token"]
    later = await introspector.create_ok(user, name="revoked after the backup")
    assert await _introspect(introspector.client, later["token"])  # now cached in Redis
    env = {**os.environ, "PATH": f"{pg_server.bindir}{os.pathsep}{os.environ['PATH']}"}
    await _run(
        _block(OPERATIONS / "backup.md", "Back up"),
        {**env, "KEYGATE_DATABASE_URL": database_url},
        tmp_path,
    )
    assert (tmp_path / "keygate.dump").stat().st_size > 0
    assert (await introspector.revoke(user, later["id"])).status == 204
    assert not await _introspect(introspector.client, later["token"])

    name = f"r_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.url())
    await admin.execute(f"CREATE DATABASE {name}")
    restored_url = pg_server.url(name)
    client = None
    try:
        env.update(KEYGATE_DATABASE_URL=restored_url, KEYGATE_REDIS_URL=redis_url)
        await _run(_block(OPERATIONS / "backup.md", "Restore"), env, tmp_path)
        await _run(_block(OPERATIONS / "backup.md", "Empty the token cache"), env, tmp_path)
        settings = load_settings(IntrospectorSettings, introspector_env(restored_url, redis_url))
        client = await aiohttp_client(create_introspector(settings))
        assert await _introspect(client, kept)
        assert await _introspect(client, later["token"]), "revoked after the backup: active again"
    finally:
        if client is not None:
            await client.close()
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def test_token_rotation_steps_run_against_a_live_gateway(live: Live, tmp_path: Path) -> None:
    """rotation.md: create the new token with the CLI, check it, find the old one's id, revoke
    it with the new one; then the old token is refused and the new one still works."""
    page = OPERATIONS / "rotation.md"
    owner = await live.stack.introspector.user("ci@example.com")
    old = await live.stack.token_for(owner, name="CI deploys")
    create = next(b for b in code_blocks(page) if "keygate tokens create" in b.text)
    new = (await _run(create, live.operator_environment(), tmp_path)).strip()
    assert new.startswith("kg_")
    env = {
        **live.base_environment(),
        "KEYGATE_URL": live.gateway_url,
        "OLD_TOKEN": old,
        "NEW_TOKEN": new,
    }
    assert (await _run(_block(page, "Check the new token"), env, tmp_path)).strip() == "200"
    whoami = await _run(_block(page, "Find the old token's id"), env, tmp_path)
    env["OLD_TOKEN_ID"] = re.search(r'"tokenId":\s*"([0-9a-f-]{36})"', whoami)[1]  # type: ignore[index]
    assert (await _run(_block(page, "Revoke the old token"), env, tmp_path)).strip() == "204"
    for token, status in ((old, 401), (new, 200)):
        response = await live.stack.gateway.get(
            "/api/platform/internal/whoami", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status == status, token[:16]


@pytest.mark.parametrize(
    "page",
    [
        "concepts.md",
        "integrating.md",
        "operations/upgrading.md",
        "operations/backup.md",
        "operations/rotation.md",
        "operations/troubleshooting.md",
    ],
)
def test_new_pages_are_in_the_nav(page: str) -> None:
    """The pages this issue added are reachable from the site's navigation."""
    assert f": {page}" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
