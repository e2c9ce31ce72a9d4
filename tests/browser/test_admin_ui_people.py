"""The People pages: an organisation admin offboards, resets and re-admits people in the UI.

Everything runs on the real stack through the gateway: the person's key is used on the protected
app before and after, their own browser is signed in while it happens, and the audit log is read
in the UI afterwards.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import aiohttp
from playwright.async_api import Locator, Page, expect

from tests.browser.admin_pages import AUDIT, LOGIN, PEOPLE, TABLE, at, log_in
from tests.harness.browser import Browsing, screenshot
from tests.harness.ui_stack import Person, UIStack


async def app_status(stack: UIStack, token: str) -> int:
    """The status of a bearer request to the protected app through the gateway."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{stack.gateway_url}/projects", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        return response.status


async def first_refusal_after(stack: UIStack, token: str, start: float) -> float:
    """How long after ``start`` ``token`` last worked, at most: when the first request the
    app refused was sent, each request sent once the one before has its answer (gives up
    after 5 s)."""
    while (sent := time.monotonic()) - start < 5:
        if await app_status(stack, token) == 401:
            return sent - start
    raise AssertionError("the token still worked 5 s after the deactivation")


def person_row(page: Page, person: Person) -> Locator:
    return page.locator(f"table#people tr[data-person-id='{person.id}']")


async def signed_in(browsing: Browsing, person: Person) -> Page:
    page = await browsing.new_page()
    await page.goto(LOGIN)
    await log_in(page, person)
    return page


async def test_an_admin_deactivates_and_reactivates_a_person(
    ui_stack: UIStack, browsing: Browsing
) -> None:
    """Deactivate: keys 401 within 100 ms, sessions end, sign-in refused, audit names the admin."""
    admin, member = ui_stack.admin, ui_stack.member
    token = ui_stack.cli("tokens", "create", "--email", member.email, "--name", "laptop")
    assert await app_status(ui_stack, token) == 200  # warm in every cache
    member_page = await signed_in(browsing, member)
    page = await signed_in(browsing, admin)

    await page.locator("nav.main-nav a", has_text="People").click()
    await page.wait_for_url(at(PEOPLE))
    await expect(person_row(page, admin)).to_contain_text("(you)")
    await expect(person_row(page, admin).locator("a", has_text="Deactivate")).to_have_count(0)
    row = person_row(page, member)
    await expect(row).to_contain_text("active")
    await screenshot(page, "people")
    await row.locator("a", has_text="Deactivate").click()
    await expect(page.locator("h1")).to_have_text(f"Deactivate {member.email}?")
    await expect(page.locator("main")).to_contain_text("1 live API key is revoked")
    await screenshot(page, "people-deactivate")
    await page.locator("#deactivate-form button[type=submit]").click()
    await page.wait_for_url(at(PEOPLE))
    answered = time.monotonic()
    refused_after = await first_refusal_after(ui_stack, token, answered)
    assert refused_after < 0.1, f"the key worked for {refused_after:.3f} s after the answer"
    await expect(page.locator(".flash")).to_contain_text(
        f"“{member.email}” was deactivated: 1 key revoked"
    )
    await expect(person_row(page, member)).to_contain_text("deactivated")

    await member_page.goto(TABLE)
    assert urlsplit(member_page.url).path == LOGIN, "the person's session outlived them"
    await member_page.locator("input[name=email]").fill(member.email)
    await member_page.locator("input[name=password]").fill(member.password)
    await member_page.locator("form#login-form button[type=submit]").click()
    await expect(member_page.locator(".error-banner")).to_contain_text("Incorrect e-mail")

    await page.goto(AUDIT)
    newest = page.locator("table#audit tbody tr").first
    await expect(newest).to_contain_text("user.deactivate")
    await expect(newest).to_contain_text(admin.email)

    await page.goto(PEOPLE)
    await person_row(page, member).locator("button", has_text="Reactivate").click()
    await page.wait_for_url(at(PEOPLE))
    await expect(page.locator(".flash")).to_contain_text(f"“{member.email}” can sign in again")
    await member_page.goto(LOGIN)
    await log_in(member_page, member)
    assert await app_status(ui_stack, token) == 401, "reactivation brought a revoked key back"


async def test_an_admin_sets_a_password_and_adds_a_person(
    ui_stack: UIStack, browsing: Browsing
) -> None:
    """A new password signs the person out everywhere; bad input names the field, sets nothing."""
    member = ui_stack.member
    member_page = await signed_in(browsing, member)
    page = await signed_in(browsing, ui_stack.admin)
    await page.goto(PEOPLE)
    await person_row(page, member).locator("a", has_text="Set password").click()
    form = page.locator("form#password-form")

    async def submit(password: str, confirm: str) -> None:
        await form.locator("input[name=password]").fill(password)
        await form.locator("input[name=confirm]").fill(confirm)
        await form.locator("button[type=submit]").click()

    await submit("new-password-1", "new-password-2")
    await expect(page.locator(".error-banner")).to_contain_text("not the same")
    await expect(form.locator("input[name=confirm]")).to_have_attribute("aria-invalid", "true")
    await submit("short", "short")
    await expect(page.locator(".error-banner")).to_contain_text("at least 8 characters")
    await expect(form.locator("input[name=password]")).to_have_attribute("aria-invalid", "true")
    await screenshot(page, "people-password-error")
    await submit("new-password-1", "new-password-1")
    await page.wait_for_url(at(PEOPLE))
    await expect(page.locator(".flash")).to_contain_text("signed out everywhere")

    await member_page.goto(TABLE)
    assert urlsplit(member_page.url).path == LOGIN, "a password reset left the old session alive"
    await log_in(member_page, Person(member.id, member.email, "new-password-1"))

    await page.locator("#add-person").click()
    await page.wait_for_url(at(f"{PEOPLE}/new"))
    new = page.locator("form#new-person-form")
    await new.locator("input[name=email]").fill(member.email)
    await new.locator("button[type=submit]").click()
    await expect(page.locator(".error-banner")).to_contain_text("already has an account")
    await new.locator("input[name=email]").fill("newcomer@example.com")
    await new.locator("input[name=password]").fill("newcomer-pass-1")
    await new.locator("input[name=confirm]").fill("newcomer-pass-1")
    await new.locator("button[type=submit]").click()
    await page.wait_for_url(at(PEOPLE))
    await expect(page.locator(".flash")).to_contain_text("“newcomer@example.com” was added")
    newcomer_page = await browsing.new_page()
    await newcomer_page.goto(LOGIN)
    await log_in(newcomer_page, Person("", "newcomer@example.com", "newcomer-pass-1"))


async def test_people_pages_are_for_organisation_admins(ui_stack: UIStack, page: Page) -> None:
    """A member sees no People link and gets the 403 page on every People address."""
    member = ui_stack.member
    await page.goto(LOGIN)
    await log_in(page, member)
    await expect(page.locator("nav.main-nav a", has_text="People")).to_have_count(0)
    for path in (PEOPLE, f"{PEOPLE}/new", f"{PEOPLE}/{ui_stack.admin.id}/deactivate"):
        response = await page.goto(path)
        assert response is not None and response.status == 403, path
        await expect(page.locator("h1")).to_have_text("Not allowed")
