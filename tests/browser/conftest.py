"""The whole keygate stack as real processes, and a real Chromium that only talks to its gateway.

``ui_stack`` starts ``keygate introspector``, ``keygate admin-ui`` and ``keygate gateway`` (local
sessions, admin UI behind it) in front of the recording upstream, and seeds an admin and a member
with the operator CLI. Chromium starts in the background at the very beginning of each test
(``_chromium``, autouse) so its ~1 s start-up overlaps the services' own.

A missing browser or a missing ``keygate admin-ui`` command fails the tests; it never skips them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser.processes import (
    ServiceProcess,
    spawn_service,
    stop_services,
    wait_listening,
)
from tests.harness.browser import (
    BrowserUnavailable,
    Browsing,
    chromium_path,
    launch_chromium,
)
from tests.harness.servers import free_port
from tests.harness.stack import INTERNAL_SECRET
from tests.harness.ui_stack import Person, UIStack
from tests.harness.upstream import create_upstream


@pytest.fixture
def session_mode() -> str:
    """The gateway's KEYGATE_SESSION_AUTHENTICATOR; a test module may override it."""
    return "local"


def stack_environment(
    database_url: str, redis_url: str, upstream_url: str, ports: dict[str, int], session_mode: str
) -> dict[str, str]:
    """Every service's environment: this process's without KEYGATE_*, then the stack's."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    return {
        **base,
        "KEYGATE_DATABASE_URL": database_url,
        "KEYGATE_REDIS_URL": redis_url,
        "KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET,
        "KEYGATE_INTROSPECTOR_PORT": str(ports["introspector"]),
        "KEYGATE_INTROSPECTOR_URL": f"http://127.0.0.1:{ports['introspector']}",
        "KEYGATE_ADMIN_UI_PORT": str(ports["admin-ui"]),
        "KEYGATE_ADMIN_UI_URL": f"http://127.0.0.1:{ports['admin-ui']}",
        "KEYGATE_GATEWAY_PORT": str(ports["gateway"]),
        "KEYGATE_UPSTREAM_URL": upstream_url,
        "KEYGATE_SESSION_AUTHENTICATOR": session_mode,
        **(
            {"KEYGATE_SESSION_CHECK_URL": f"{upstream_url}/session"}
            if session_mode != "local"
            else {}
        ),
        "KEYGATE_OUTBOX_POLL_SECONDS": "0.1",
        "KEYGATE_LAST_USED_FLUSH_SECONDS": "0.1",
        "KEYGATE_LOG_LEVEL": "warning",
    }


async def seed_while_starting(stack: UIStack, services: list[ServiceProcess]) -> None:
    """Create the stack's admin and member with the CLI while ``services`` start up; fail the
    test if either or any service fails (a missing admin UI named first)."""

    def seed(person: Person, *flags: str) -> Person:
        user_id = stack.cli(
            "users",
            "create",
            "--email",
            person.email,
            *flags,
            "--password-stdin",
            stdin=person.password + "\n",
        )
        return Person(user_id, person.email, person.password)

    # The CLI talks to Postgres directly, so seeding overlaps the services' start-up.
    admin, member, *waits = await asyncio.gather(
        asyncio.to_thread(seed, stack.admin, "--admin"),
        asyncio.to_thread(seed, stack.member),
        *(wait_listening(service) for service in services),
        return_exceptions=True,
    )
    # The admin UI first: when it is missing, that is the news, not its knock-on effects.
    failures = sorted(
        (str(w) for w in waits if w is not None),
        key=lambda text: "admin-ui" not in text.split("\n", 1)[0],
    )
    failures += [f"seeding users: {x}" for x in (admin, member) if isinstance(x, BaseException)]
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    assert isinstance(admin, Person) and isinstance(member, Person)
    stack.admin, stack.member = admin, member


@pytest.fixture
async def ui_stack(
    database_url: str, redis_url: str, aiohttp_server: Any, tmp_path: Path, session_mode: str
) -> AsyncIterator[UIStack]:
    """Introspector, admin UI and gateway (local sessions) as processes, with two people.

    With ``session_mode`` "upstream", people are signed in by the recording upstream's session
    check (cookie ``sid=valid-<id>``, e-mail from the ``email`` cookie) instead.
    """
    upstream_app, record = create_upstream()
    upstream = await aiohttp_server(upstream_app)
    upstream_url = str(upstream.make_url("")).rstrip("/")
    ports = {"introspector": free_port(), "admin-ui": free_port(), "gateway": free_port()}
    env = stack_environment(database_url, redis_url, upstream_url, ports, session_mode)
    services = [spawn_service(name, env, port, tmp_path) for name, port in ports.items()]
    stack = UIStack(
        gateway_url=f"http://127.0.0.1:{ports['gateway']}",
        env=env,
        database_url=database_url,
        upstream=record,
        admin=Person("", "admin@example.com", "admin-password-1"),
        member=Person("", "member@example.com", "member-password-1"),
    )
    try:
        await seed_while_starting(stack, services)
        yield stack
    finally:
        unclean = await stop_services(services)
    assert not unclean, "\n\n".join(unclean)


@pytest.fixture(autouse=True)
async def _chromium() -> AsyncIterator[asyncio.Task[Browser]]:
    """Chromium, launching in the background from the first moment of the test."""
    missing = ""
    try:
        chromium_path()
    except BrowserUnavailable as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    playwright = await async_playwright().start()
    task = asyncio.create_task(launch_chromium(playwright))
    try:
        yield task
    finally:
        # A launch that failed has already been reported by ``browsing``.
        with contextlib.suppress(Exception):
            await (await task).close()
        await playwright.stop()


@pytest.fixture
async def browsing(_chromium: asyncio.Task[Browser], ui_stack: UIStack) -> AsyncIterator[Browsing]:
    """Browser contexts on the running stack; at the end, no page may have misbehaved."""
    try:
        browser: Browser | None = await _chromium
    except BrowserUnavailable as exc:
        browser, missing = None, str(exc)
    if browser is None:
        pytest.fail(missing, pytrace=False)
    browsing = Browsing(browser, ui_stack.gateway_url)
    yield browsing
    problems = browsing.problems()
    await browsing.close()
    assert not problems, problems


@pytest.fixture
async def page(browsing: Browsing) -> Page:
    """One person's browser tab on the gateway."""
    return await browsing.new_page()
