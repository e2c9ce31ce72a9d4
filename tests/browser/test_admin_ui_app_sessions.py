"""The same pages when people sign in to the protected app, not to keygate (upstream sessions).

The gateway asks the recording upstream's session check who a cookie belongs to
(``sid=valid-<app user id>``, e-mail from the ``email`` cookie). keygate knows such people by the
app's id. The seeded member and admin have passwords (and one is an admin), so keygate never
links them by e-mail: an operator links them with ``keygate users link`` first.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from playwright.async_api import Page, expect

from keygate_core.token_format import SCANNER_REGEX
from tests.browser.admin_pages import ADMIN, LOGIN, TABLE, create_in_dialog, token_rows
from tests.harness.browser import Browsing, screenshot
from tests.harness.polling import eventually
from tests.harness.ui_stack import Person, UIStack


@pytest.fixture
def session_mode() -> str:
    return "upstream"


async def signed_in_to_the_app(
    ui_stack: UIStack, browsing: Browsing, person: Person, app_user_id: str
) -> Page:
    """A browser whose only credential is the app's own session cookie, for a person an
    operator has linked to that app account."""
    link = ("users", "link", "--email", person.email, "--external-id", app_user_id)
    await asyncio.to_thread(ui_stack.cli, *link)
    page = await browsing.new_page()
    await page.context.add_cookies(
        [
            {"name": "sid", "value": f"valid-{app_user_id}", "url": browsing.base_url},
            {"name": "email", "value": person.email, "url": browsing.base_url},
        ]
    )
    return page


async def test_a_person_signed_in_to_the_app_manages_their_keys(
    ui_stack: UIStack, browsing: Browsing
) -> None:
    """Signed in by the app alone, a person sees, creates, uses and revokes their own keys."""
    member = ui_stack.member
    page = await signed_in_to_the_app(ui_stack, browsing, member, "app-user-42")
    await page.goto(TABLE)
    assert page.url.endswith(TABLE), "sent to keygate's login although the app vouched"
    await expect(page.locator("h1")).to_have_text("API keys")
    await expect(page.locator(".account-email")).to_have_text(member.email)
    # Signing out is the app's business: keygate offers no sign-out it cannot perform.
    await expect(page.locator("form#logout-form")).to_have_count(0)
    await screenshot(page, "app-session-tokens-empty")

    token = await create_in_dialog(page, "app session key")
    status, body = await ui_stack.whoami(token)
    assert status == 200, body
    # The keygate user the operator made and linked, not a second person.
    assert (body["userId"], body["email"]) == (member.id, member.email)

    await page.locator("a#reveal-done").click()
    await expect(token_rows(page)).to_have_count(1)
    await token_rows(page).locator("form.revoke-form button").click()
    await page.locator("#revoke-confirm").click()
    await expect(token_rows(page)).to_contain_text("revoked")

    async def refused() -> bool:
        return (await ui_stack.whoami(token))[0] == 401

    assert await eventually(refused, within=1.0)


async def test_an_admin_signed_in_to_the_app_sees_everyones_keys(
    ui_stack: UIStack, browsing: Browsing
) -> None:
    """Signed in by the app, an admin sees everyone's keys; without an app session, nobody."""
    member_page = await signed_in_to_the_app(ui_stack, browsing, ui_stack.member, "app-user-42")
    await member_page.goto(TABLE)
    await create_in_dialog(member_page, "member's key")

    admin_page = await signed_in_to_the_app(ui_stack, browsing, ui_stack.admin, "app-admin-1")
    await admin_page.goto(ADMIN)
    await expect(admin_page.locator("h1")).to_have_text("All API keys")
    await expect(token_rows(admin_page)).to_contain_text("member's key")
    await expect(token_rows(admin_page)).to_contain_text(ui_stack.member.email)
    # Owner and actions fit a laptop-sized window: nothing pushes the page sideways.
    overflow = await admin_page.evaluate(
        "() => document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the window"
    await screenshot(admin_page, "app-session-admin-all-keys")

    # Without an app session there is nobody to show the pages to.
    stranger = await browsing.new_page()
    await stranger.goto(TABLE)
    assert stranger.url.split("?")[0].endswith(LOGIN)


async def test_forms_need_the_token_of_this_browser(ui_stack: UIStack, browsing: Browsing) -> None:
    """The app's cookie alone cannot create a key: the form token is bound to this browser."""
    member = ui_stack.member
    page = await signed_in_to_the_app(ui_stack, browsing, member, "app-user-42")
    await page.goto(TABLE)
    csrf = await page.locator("form#create-form input[name=csrf]").input_value()
    app_cookies = f"sid=valid-app-user-42; email={member.email}"
    form = {"name": "forged", "scope": "PERSONAL", "csrf": csrf}
    async with aiohttp.ClientSession() as http:
        # The app's session and a token from another browser, but not that browser's cookie.
        async with http.post(
            f"{ui_stack.gateway_url}{TABLE}",
            data=form,
            headers={"Cookie": app_cookies, "Origin": ui_stack.gateway_url},
            allow_redirects=False,
        ) as response:
            body = await response.text()
        assert response.status == 403, body[:300]
        assert not re.search(SCANNER_REGEX, body)
    assert await ui_stack.tokens_of(member) == []
