"""A real headless Chromium for the browser tests, from the machine's own ``chromium`` package.

Playwright drives it, but its bundled browser download is never used: the tests launch the
Debian binary (``tests/harness/ensure-packages.sh`` installs it; ``KEYGATE_TEST_CHROMIUM`` points
elsewhere). Every page is fenced to 127.0.0.1 — a request anywhere else is refused and recorded,
so a stray CDN link or external font is a test failure, not a silent download.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Playwright,
    Route,
)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


class BrowserUnavailable(RuntimeError):
    """No usable Chromium binary on this machine."""


def chromium_path() -> str:
    """The Chromium binary to drive: ``KEYGATE_TEST_CHROMIUM``, else the Debian package's."""
    explicit = os.environ.get("KEYGATE_TEST_CHROMIUM")
    candidates = [explicit] if explicit else ["/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrowserUnavailable(
        "no Chromium binary found (looked for "
        f"{explicit or '/usr/bin/chromium and chromium on PATH'}); run `make servers` "
        "(installs the Debian `chromium` package) or set KEYGATE_TEST_CHROMIUM. "
        "Never `playwright install`: the tests use the machine's browser."
    )


async def launch_chromium(playwright: Playwright) -> Browser:
    """Start headless Chromium from :func:`chromium_path`."""
    path = chromium_path()
    try:
        return await playwright.chromium.launch(
            executable_path=path, args=CHROMIUM_ARGS, timeout=20_000
        )
    except Error as exc:
        raise BrowserUnavailable(f"Chromium at {path} would not start: {exc.message}") from None


@dataclass
class PageProblems:
    """What a browser context did that a healthy admin UI never makes it do."""

    foreign_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """Empty when nothing went wrong, else one line per problem."""
        lines = [f"request to a non-local host: {url}" for url in self.foreign_requests]
        lines += [f"uncaught script error: {text}" for text in self.page_errors]
        lines += [f"Content-Security-Policy violation: {text}" for text in self.csp_violations]
        return "\n".join(lines)


async def watch_context(context: BrowserContext) -> PageProblems:
    """Fence ``context`` to 127.0.0.1 and record script errors and CSP violations."""
    problems = PageProblems()

    async def fence(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme not in {"http", "https", "ws", "wss"} or url.hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            problems.foreign_requests.append(route.request.url)
            await route.abort("blockedbyclient")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.csp_violations.append(message.text)

    await context.route("**/*", fence)
    context.on("console", console)
    context.on("weberror", lambda error: problems.page_errors.append(str(error.error)))
    return problems


async def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as ``test-artifacts/screenshots/<name>.png`` for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path


@dataclass
class Browsing:
    """Opens pages on the gateway, each in its own cookie jar, all fenced to 127.0.0.1."""

    browser: Browser
    base_url: str
    _contexts: list[tuple[BrowserContext, PageProblems]] = field(default_factory=list)

    async def new_page(self) -> Page:
        """A page in a fresh context (a separate person's browser) whose URLs are gateway paths."""
        context = await self.browser.new_context(base_url=self.base_url)
        context.set_default_timeout(5_000)
        context.set_default_navigation_timeout(10_000)
        self._contexts.append((context, await watch_context(context)))
        return await context.new_page()

    def problems(self) -> str:
        return "\n".join(p.describe() for _, p in self._contexts if p.describe())

    async def close(self) -> None:
        for context, _ in self._contexts:
            await context.close()
