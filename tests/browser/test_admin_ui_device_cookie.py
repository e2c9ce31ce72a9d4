"""A browser that signed in before keeps signing in while guesses spent the e-mail's budget.

Real Chromium through the gateway: the sign-in leaves a ``kg_device`` cookie (HttpOnly,
SameSite=Strict, a year), and after wrong passwords for the same e-mail from many addresses
have used up ``KEYGATE_FAILED_LOGIN_LIMIT_PER_ACCOUNT`` that browser still signs in; a new one
is told to wait.
"""

from __future__ import annotations

import time

import aiohttp
from playwright.async_api import Page, expect

from tests.browser.admin_pages import LOGIN, TABLE, log_in
from tests.harness.browser import Browsing, screenshot
from tests.harness.stack import INTERNAL_SECRET
from tests.harness.ui_stack import Person, UIStack

YEAR = 365 * 24 * 3600


async def spend_the_e_mail_budget(ui_stack: UIStack, email: str, guesses: int = 100) -> None:
    """``guesses`` wrong passwords for ``email``, each from another client address, sent to
    the introspector as the admin UI would send them."""
    url = f"{ui_stack.env['KEYGATE_INTROSPECTOR_URL']}/sessions"
    async with aiohttp.ClientSession() as http:
        for i in range(guesses):
            headers = {
                "X-Keygate-Internal-Secret": INTERNAL_SECRET,
                "X-Keygate-Client-Address": f"10.{i // 250}.{i % 250}.1",
            }
            body = {"email": email, "password": f"guess {i}"}
            async with http.post(url, json=body, headers=headers) as response:
                assert response.status == 401, await response.text()


async def submit_login(page: Page, person: Person) -> None:
    await page.goto(LOGIN)
    form = page.locator("form#login-form")
    await form.locator("input[name=email]").fill(person.email)
    await form.locator("input[name=password]").fill(person.password)
    await form.locator("button[type=submit]").click()


async def test_a_known_browser_signs_in_while_the_e_mail_budget_is_spent(
    ui_stack: UIStack, browsing: Browsing
) -> None:
    """kg_device is HttpOnly, Strict and lasts a year; with it the owner gets in, without not."""
    known = await browsing.new_page()
    await known.goto(TABLE)
    await log_in(known, ui_stack.member)
    (device,) = [c for c in await known.context.cookies() if c["name"] == "kg_device"]
    assert device["httpOnly"] and device["sameSite"] == "Strict"
    assert device["path"] == "/_keygate/"
    assert abs(device["expires"] - (time.time() + YEAR)) < 120
    await known.locator("form#logout-form button[type=submit]").click()
    await known.wait_for_url(lambda url: LOGIN in url)

    await spend_the_e_mail_budget(ui_stack, ui_stack.member.email)
    stranger = await browsing.new_page()
    await submit_login(stranger, ui_stack.member)
    await expect(stranger.locator(".error-banner")).to_contain_text("Too many attempts")
    await screenshot(stranger, "login-budget-spent")

    await submit_login(known, ui_stack.member)
    await known.wait_for_url(lambda url: TABLE in url)
