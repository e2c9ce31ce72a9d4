"""Every admin UI page passes axe-core with no serious or critical violation, in light and dark.

axe-core comes from the npm registry, pinned in package-lock.json and installed by
``make test-env``; a missing copy fails these tests ("run make test-env"), it never skips them.
Each page of :data:`tests.browser.ui_pages.PAGES` — signed out, as a member, as an admin, with
and without JavaScript, dialogs open — is checked in both colour schemes: contrast is the usual
serious finding, and the dark scheme has colours of its own. Minor and moderate findings are
printed, so they show in the test output without failing it.
"""

from __future__ import annotations

from typing import Literal

from playwright.async_api import Page

from tests.browser.admin_pages import TABLE
from tests.browser.ui_pages import ADMIN_VIEWER, PAGES, viewers
from tests.harness.browser import Browsing, axe_violations, screenshot
from tests.harness.ui_stack import UIStack

SCHEMES: list[Literal["light", "dark"]] = ["light", "dark"]
BLOCKING = {"serious", "critical"}


async def test_every_page_has_no_serious_accessibility_violation_and_shows_focus(
    browsing: Browsing, ui_stack: UIStack
) -> None:
    """axe on every page in both schemes, then Tab through the keys page (one stack for both)."""
    tabs = await viewers(browsing, ui_stack)
    blocking: list[str] = []
    for scheme in SCHEMES:
        for tab in [*tabs.tabs.values(), tabs.mirror]:
            await tab.emulate_media(color_scheme=scheme)
        for ui_page in PAGES:
            tab = await tabs.scriptable(ui_page, await tabs.open(ui_page))
            if scheme == "dark":  # the light ones come from the width walk
                await screenshot(tab, f"{ui_page.name}-dark")
            for violation in await axe_violations(tab):
                line = f"{ui_page.name} ({scheme}): {violation['id']} [{violation['impact']}]"
                details = "\n    ".join(violation["nodes"])
                if violation["impact"] in BLOCKING:
                    blocking.append(f"{line} {violation['help']}\n    {details}")
                else:
                    print(f"{line} {violation['help']}")
    assert not blocking, "\n".join(blocking)
    await every_control_shows_where_the_focus_is(tabs.tabs[ADMIN_VIEWER])


async def focus_ring(page: Page) -> dict[str, str]:
    """The focused element's tag and its computed outline and box-shadow."""
    ring: dict[str, str] = await page.evaluate(
        """() => {
            const el = document.activeElement, style = getComputedStyle(el);
            return {element: el.outerHTML.slice(0, 100), outline: style.outlineStyle,
                    outlineWidth: style.outlineWidth, shadow: style.boxShadow};
        }"""
    )
    return ring


def visible_ring(ring: dict[str, str]) -> bool:
    outline = ring["outline"] != "none" and ring["outlineWidth"] not in {"0px", ""}
    return outline or ring["shadow"] not in {"none", ""}


async def every_control_shows_where_the_focus_is(page: Page) -> None:
    """Tab through the keys page (keys listed): each control focused draws an outline or ring."""
    await page.emulate_media(color_scheme="light")
    await page.goto(TABLE)
    seen: list[str] = []
    unringed: list[str] = []
    for _ in range(40):
        await page.keyboard.press("Tab")
        ring = await focus_ring(page)
        if ring["element"].startswith("<body") or ring["element"] in seen:
            break
        seen.append(ring["element"])
        if not visible_ring(ring):
            unringed.append(
                f"{ring['element']} (outline {ring['outline']}, shadow {ring['shadow']})"
            )
    # Skip link, brand, nav, sign out, New API key and each row's Usage and Revoke at least.
    assert len(seen) >= 8, seen
    assert not unringed, "\n".join(unringed)
