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
from typing import TypedDict
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
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


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

    async def new_page(self, *, javascript: bool = True) -> Page:
        """A page in a fresh context (a separate person's browser) whose URLs are gateway paths;
        ``javascript=False`` is a browser with scripts off, for the no-JS paths."""
        context = await self.browser.new_context(
            base_url=self.base_url, java_script_enabled=javascript
        )
        context.set_default_timeout(5_000)
        context.set_default_navigation_timeout(10_000)
        self._contexts.append((context, await watch_context(context)))
        return await context.new_page()

    def problems(self) -> str:
        return "\n".join(p.describe() for _, p in self._contexts if p.describe())

    async def close(self) -> None:
        for context, _ in self._contexts:
            await context.close()


# Every visible control must sit inside the viewport's width and be the thing under its own
# centre once scrolled to: not cut off by a card, not only reachable by scrolling a box sideways.
# Controls parked off-screen until focused (the skip link) are measured while focused. While a
# modal dialog is open only its own controls count (the rest of the page is inert).
LAYOUT_CHECK = """() => {
  const width = window.innerWidth, problems = [];
  const scrollWidth = document.documentElement.scrollWidth;
  if (scrollWidth > width) problems.push(`page scrolls sideways: ${scrollWidth}px > ${width}px`);
  const modal = document.querySelector('dialog:modal');
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary';
  const describe = el => el.outerHTML.replace(/\\s+/g, ' ').slice(0, 120);
  for (const el of (modal || document).querySelectorAll(selector)) {
    if (!el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
    const parked = el.getBoundingClientRect().right <= 0;
    if (parked) el.focus({preventScroll: true});
    el.scrollIntoView({block: 'center', inline: 'nearest'});
    const box = el.getBoundingClientRect();
    let sideways = false;
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      sideways ||= up.scrollLeft !== 0;
      up.scrollLeft = 0;
    }
    const where = `${Math.round(box.left)}..${Math.round(box.right)} of ${width}px`;
    if (sideways) {
      problems.push(`only reachable by scrolling a box sideways: ${describe(el)}`);
    } else if (box.left < 0 || box.right > width + 0.5) {
      problems.push(`outside the viewport (${where}): ${describe(el)}`);
    } else {
      const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
      if (!hit || !el.contains(hit)) {
        const top = hit && describe(hit);
        problems.push(`clipped or covered (${where}; on top: ${top}): ${describe(el)}`);
      }
    }
    if (parked) el.blur();
  }
  window.scrollTo(0, 0);
  return problems;
}"""


async def layout_problems(page: Page) -> list[str]:
    """What :data:`LAYOUT_CHECK` finds wrong with ``page`` at its current viewport."""
    problems: list[str] = await page.evaluate(LAYOUT_CHECK)
    return problems


class AxeViolation(TypedDict):
    """One axe-core rule ``page`` breaks: its id, impact (minor to critical), one-line help, and
    each offending node as "<selector> — <what to fix>"."""

    id: str
    impact: str
    help: str
    nodes: list[str]


async def axe_violations(page: Page) -> list[AxeViolation]:
    """axe-core's violations on ``page``, each with its rule id, impact and offending nodes.

    The script goes in through ``evaluate`` (the devtools protocol), because the pages' strict
    Content-Security-Policy would block a script tag; a missing axe-core is a failure, never a skip.
    """
    if not AXE.is_file():
        raise AssertionError(f"axe-core is not installed ({AXE.name} missing): run make test-env")
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    violations: list[AxeViolation] = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(
            v => ({id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.map(n => n.target.join(' ') + ' — ' + n.failureSummary)}))"""
    )
    return violations
