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
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.harness.browser import BrowserUnavailable, Browsing, chromium_path, launch_chromium
from tests.harness.servers import free_port
from tests.harness.stack import INTERNAL_SECRET
from tests.harness.ui_stack import KEYGATE, Person, UIStack
from tests.harness.upstream import create_upstream

START_TIMEOUT = 30.0


@dataclass
class _Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""


def _spawn(name: str, env: dict[str, str], port: int, logs: Path) -> _Service:
    log = logs / f"{name}.log"
    # A file, not a pipe: a chatty service must never block on a full pipe mid-test.
    with log.open("wb") as sink:
        process = subprocess.Popen([KEYGATE, name], env=env, stdout=sink, stderr=subprocess.STDOUT)
    return _Service(name, port, process, log)


async def _wait_listening(service: _Service) -> str | None:
    """None once ``service`` accepts connections, else why it never will."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while loop.time() < deadline:
        if service.process.poll() is not None:
            output = service.log_tail()
            if f"invalid choice: '{service.name}'" in output:
                return (
                    f"`keygate {service.name}` is not available: the keygate CLI has no "
                    f"{service.name} command (is its service missing or not wired into "
                    f"keygate_cli/main.py?)\n{output}"
                )
            return (
                f"`keygate {service.name}` exited with status {service.process.returncode} "
                f"before listening on 127.0.0.1:{service.port}:\n{output}"
            )
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", service.port)
            writer.close()
            await writer.wait_closed()
            return None
        await asyncio.sleep(0.05)
    return (
        f"`keygate {service.name}` is not listening on 127.0.0.1:{service.port} after "
        f"{START_TIMEOUT}s:\n{service.log_tail()}"
    )


async def _stop(services: list[_Service]) -> list[str]:
    """SIGTERM everything; the services that did not stop cleanly, with their output."""
    for service in services:
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
    unclean: list[str] = []
    for service in services:
        try:
            await asyncio.to_thread(service.process.wait, 20)
        except subprocess.TimeoutExpired:
            service.process.kill()
            await asyncio.to_thread(service.process.wait)
        if service.process.returncode != 0:
            unclean.append(
                f"`keygate {service.name}` ended with status {service.process.returncode}:\n"
                f"{service.log_tail()}"
            )
    return unclean


@pytest.fixture
def session_mode() -> str:
    """The gateway's KEYGATE_SESSION_AUTHENTICATOR; a test module may override it."""
    return "local"


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
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    env = {
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
    services = [_spawn(name, env, port, tmp_path) for name, port in ports.items()]
    stack = UIStack(
        gateway_url=f"http://127.0.0.1:{ports['gateway']}",
        env=env,
        database_url=database_url,
        upstream=record,
        admin=Person("", "admin@example.com", "admin-password-1"),
        member=Person("", "member@example.com", "member-password-1"),
    )

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

    try:
        # The CLI talks to Postgres directly, so seeding overlaps the services' start-up.
        admin, member, *waits = await asyncio.gather(
            asyncio.to_thread(seed, stack.admin, "--admin"),
            asyncio.to_thread(seed, stack.member),
            *(_wait_listening(service) for service in services),
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
        yield stack
    finally:
        unclean = await _stop(services)
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
