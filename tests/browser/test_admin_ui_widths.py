"""Every admin UI page at a desktop, a tablet and a phone width: nothing cut off, nothing sideways.

For each page of :data:`tests.browser.ui_pages.PAGES` at 1280×800, 768×1024 and 375×812 the page
must not scroll horizontally, and every visible link, button and field must lie inside the viewport
and be the element under its own centre (not clipped by a card, not reachable only by scrolling a
box sideways). A full-page screenshot of each goes to
``test-artifacts/screenshots/<page>-<width>.png`` for people to look at. One stack and one
browser serve the whole walk.
"""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.admin_pages import ADMIN
from tests.browser.ui_pages import ADMIN_VIEWER, LONG_NAME, PAGES, viewers
from tests.harness.browser import Browsing, layout_problems, screenshot
from tests.harness.ui_stack import UIStack

WIDTHS = [(1280, 800), (768, 1024), (375, 812)]


async def test_every_page_fits_every_width(browsing: Browsing, ui_stack: UIStack) -> None:
    """The walk over every page and width, then a closer look at a key's row on a phone (one
    stack for both: starting one costs more than either check)."""
    tabs = await viewers(browsing, ui_stack)
    failures: list[str] = []
    for width, height in WIDTHS:
        for tab in tabs.tabs.values():
            await tab.set_viewport_size({"width": width, "height": height})
        for ui_page in PAGES:
            tab = await tabs.open(ui_page)
            await screenshot(tab, f"{ui_page.name}-{width}")
            failures += [f"{ui_page.name} at {width}px: {p}" for p in await layout_problems(tab)]
    assert not failures, "\n".join(failures)
    await row_actions_in_view_on_a_phone(tabs.tabs[ADMIN_VIEWER])


async def row_actions_in_view_on_a_phone(admin: Page) -> None:
    """At 375 px a key's row still shows its status, its Usage link and its Revoke button."""
    await admin.set_viewport_size({"width": 375, "height": 812})
    await admin.goto(ADMIN)
    row = admin.locator("tr[data-token-id]", has_text=LONG_NAME)
    # Scroll down to the row only: a sideways scroll would hide what this test looks for.
    await row.evaluate("row => window.scrollTo(0, row.getBoundingClientRect().top + scrollY - 80)")
    for control in ("a:text('Usage')", "button:text('Revoke')", ".badge"):
        await expect(row.locator(control)).to_be_in_viewport(ratio=1)
    # The reflowed row names each value, as the header row did.
    await expect(row.locator("td.cell-status")).to_have_attribute("data-label", "Status")
