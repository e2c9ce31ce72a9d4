"""Every page of the admin UI, as one list the width and accessibility checks walk.

A page is who looks at it (``viewer``), where (``path``, with ``{token}`` for a seeded key's id
and ``{member}`` for the member's user id)
and what a person does there first (``then``: open a dialog, submit a form). A new page (say, the
Users page) is one more :class:`UIPage` in :data:`PAGES`; both checks then cover it at every
width, signed in or not, in light and dark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from playwright.async_api import Page, expect

from tests.browser.admin_pages import (
    ADMIN,
    AUDIT,
    LOGIN,
    PEOPLE,
    TABLE,
    create_form_fields,
    log_in,
    post_form,
    session_cookie,
)
from tests.harness.browser import Browsing
from tests.harness.ui_stack import Person, UIStack

# Viewers: a browser each, so their cookie jars never mix.
ANONYMOUS, ADMIN_VIEWER, MEMBER, ADMIN_NO_JS = "anonymous", "admin", "member", "admin-no-js"
# A long name and a long owner e-mail are what push a table past its card.
LONG_NAME = "Nightly deploy bot for the production cluster in eu-west-1"
LONG_EMAIL = "alexandra.konstantinopoulou@platform-engineering.example.com"


async def wrong_password(page: Page) -> None:
    form = page.locator("form#login-form")
    await form.locator("input[name=email]").fill("nobody@example.com")
    await form.locator("input[name=password]").fill("not-the-password")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("[role=alert], .error-banner").first).to_be_visible()


async def open_create_dialog(page: Page) -> None:
    await page.locator("#new-token").click()
    await expect(page.locator("dialog#create-dialog")).to_be_visible()


async def open_revoke_dialog(page: Page) -> None:
    await page.locator(".revoke-form button[type=submit]").first.click()
    await expect(page.locator("dialog#revoke-dialog")).to_be_visible()


async def open_reveal_dialog(page: Page) -> None:
    """Create a key in the dialog: the reveal dialog opens over the list."""
    await open_create_dialog(page)
    await page.locator("dialog#create-dialog input[name=name]").fill("revealed in a dialog")
    await page.locator("dialog#create-dialog [type=submit]").click()
    await expect(page.locator("dialog#reveal-dialog code#token-value")).to_be_visible()


async def mismatched_passwords(page: Page) -> None:
    form = page.locator("form#password-form")
    await form.locator("input[name=password]").fill("new-password-1")
    await form.locator("input[name=confirm]").fill("new-password-2")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".error-banner")).to_be_visible()


async def submit_create_form(page: Page) -> None:
    """The no-JS create page's form, submitted: the browser lands on the reveal page."""
    await page.locator("form#create-form input[name=name]").fill("no-js reveal")
    await page.locator("form#create-form [type=submit]").click()
    await expect(page.locator("code#token-value")).to_be_visible()


@dataclass(frozen=True)
class UIPage:
    name: str
    viewer: str
    path: str
    then: Callable[[Page], Awaitable[None]] | None = None
    status: int = 200


PAGES = [
    UIPage("sign-in", ANONYMOUS, LOGIN),
    UIPage("sign-in-error", ANONYMOUS, LOGIN, wrong_password),
    UIPage("keys-empty", MEMBER, TABLE),
    UIPage("keys", ADMIN_VIEWER, TABLE),
    UIPage("create-dialog", ADMIN_VIEWER, TABLE, open_create_dialog),
    UIPage("revoke-dialog", ADMIN_VIEWER, TABLE, open_revoke_dialog),
    UIPage("all-keys", ADMIN_VIEWER, ADMIN),
    UIPage("all-keys-filtered", ADMIN_VIEWER, f"{ADMIN}?user=example&scope=&status=active"),
    UIPage("audit", ADMIN_VIEWER, AUDIT),
    UIPage("usage", ADMIN_VIEWER, f"{TABLE}/{{token}}/usage"),
    UIPage("new-no-js", ADMIN_NO_JS, f"{TABLE}/new"),
    UIPage("reveal-no-js", ADMIN_NO_JS, f"{TABLE}/new", submit_create_form),
    UIPage("revoke-confirm-no-js", ADMIN_NO_JS, f"{TABLE}/{{token}}/revoke"),
    UIPage("reveal-dialog", ADMIN_VIEWER, TABLE, open_reveal_dialog),
    UIPage("people", ADMIN_VIEWER, PEOPLE),
    UIPage("people-filtered", ADMIN_VIEWER, f"{PEOPLE}?q=example&status=active"),
    UIPage("people-add", ADMIN_VIEWER, f"{PEOPLE}/new"),
    UIPage("people-password", ADMIN_VIEWER, f"{PEOPLE}/{{member}}/password"),
    UIPage(
        "people-password-error", ADMIN_VIEWER, f"{PEOPLE}/{{member}}/password", mismatched_passwords
    ),
    UIPage("people-deactivate", ADMIN_VIEWER, f"{PEOPLE}/{{member}}/deactivate"),
    UIPage("forbidden", MEMBER, ADMIN, status=403),
    UIPage("people-forbidden", MEMBER, PEOPLE, status=403),
    UIPage("not-found", ADMIN_VIEWER, f"{TABLE}/no-such-page", status=404),
]


@dataclass
class Viewers:
    """One signed-in (or not) tab per viewer, and the id of a seeded active key."""

    tabs: dict[str, Page]
    token_id: str
    member_id: str
    mirror: Page

    async def open(self, ui_page: UIPage) -> Page:
        """Go to ``ui_page`` as its viewer and do what it does first; the tab."""
        tab = self.tabs[ui_page.viewer]
        response = await tab.goto(ui_page.path.format(token=self.token_id, member=self.member_id))
        assert response is not None and response.status == ui_page.status, (
            f"{ui_page.name}: {response and response.status} from {tab.url}"
        )
        if ui_page.then is not None:
            await ui_page.then(tab)
        return tab

    async def scriptable(self, ui_page: UIPage, tab: Page) -> Page:
        """``tab`` itself, or for a no-JS viewer a copy of its document in a tab that can run
        a checker's script but not the page's own (a JS-less page never runs timers, so a
        script like axe-core would wait forever in it)."""
        if ui_page.viewer != ADMIN_NO_JS:
            return tab
        html, url = await tab.content(), tab.url
        await self.mirror.unroute_all()
        await self.mirror.route(
            url, lambda route: route.fulfill(body=html, content_type="text/html")
        )
        await self.mirror.route(
            "**/app.js", lambda route: route.fulfill(body="", content_type="text/javascript")
        )
        await self.mirror.goto(url)
        return self.mirror


async def seed_keys(stack: UIStack, tab: Page, names: list[str]) -> None:
    """Create keys as ``tab``'s person by posting the create form (quicker than the dialog)."""
    cookie = await session_cookie(tab)
    for name in names:
        fields = await create_form_fields(tab)
        status, body = await post_form(stack, TABLE, cookie, {**fields, "name": name})
        assert status == 200, (status, body[:500])


def seed_organisation(stack: UIStack) -> None:
    """With the operator CLI: a person with a long e-mail owning a key that expires (the stack
    runs the community edition, so every key is PERSONAL)."""
    stack.cli("users", "create", "--email", LONG_EMAIL)
    stack.cli(
        *("tokens", "create", "--email", LONG_EMAIL, "--name", "Terraform state sync"),
        *("--expires-in", "30d"),
    )


async def signed_in(browsing: Browsing, person: Person, *, javascript: bool = True) -> Page:
    tab = await browsing.new_page(javascript=javascript)
    await tab.goto(LOGIN)
    await log_in(tab, person)
    return tab


async def viewers(browsing: Browsing, stack: UIStack) -> Viewers:
    """Every viewer's tab, with the admin owning a few keys (one with a long name) and
    :func:`seed_organisation`'s people and keys."""
    seeding = asyncio.create_task(asyncio.to_thread(seed_organisation, stack))
    anonymous = await browsing.new_page()
    admin = await signed_in(browsing, stack.admin)
    member = await signed_in(browsing, stack.member)
    admin_no_js = await signed_in(browsing, stack.admin, javascript=False)
    await seed_keys(stack, admin, [LONG_NAME, "ci"])
    await seeding
    await admin.goto(TABLE)
    token_id = await admin.locator("tr[data-token-id]").first.get_attribute("data-token-id")
    assert token_id, "no key row after seeding"
    tabs = {ANONYMOUS: anonymous, ADMIN_VIEWER: admin, MEMBER: member, ADMIN_NO_JS: admin_no_js}
    return Viewers(tabs, token_id, stack.member.id, mirror=await browsing.new_page())
