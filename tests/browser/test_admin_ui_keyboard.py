"""Every admin UI flow with the keyboard alone: Tab, Shift+Tab, Enter, Space, Escape and typing.

No test here clicks or focuses an element from script; they only read where focus is. Dialogs
keep Tab and Shift+Tab inside them and give focus back to the control that opened them.
"""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.admin_pages import ADMIN, LOGIN, TABLE, at, focus_by_tab, token_rows
from tests.harness.ui_stack import Person, UIStack

REVOKE_BUTTON = "tr[data-token-id] form.revoke-form button"


async def focused(page: Page, selector: str) -> bool:
    """Whether the element with focus matches ``selector``."""
    return bool(await page.evaluate("s => !!document.activeElement?.matches(s)", selector))


async def assert_tab_stays_in(page: Page, dialog: str, presses: int = 12) -> None:
    """Tab and Shift+Tab, pressed more often than ``dialog`` has controls, never leave it."""
    inside = f"{dialog} *"
    for key in ("Tab", "Shift+Tab"):
        for press in range(presses):
            await page.keyboard.press(key)
            where = await page.evaluate("() => document.activeElement?.outerHTML.slice(0, 120)")
            assert await focused(page, inside), f"{key} #{press + 1} left {dialog}: {where}"


async def sign_in_by_keyboard(page: Page, person: Person) -> None:
    """Tab to the login fields, type, press Enter; land on the keys list."""
    await page.goto(LOGIN)
    await focus_by_tab(page, "form#login-form input[name=email]")
    await page.keyboard.type(person.email)
    await focus_by_tab(page, "form#login-form input[name=password]")
    await page.keyboard.type(person.password)
    await page.keyboard.press("Enter")
    await page.wait_for_url(at(TABLE))


async def test_create_copy_and_close_the_reveal_by_keyboard(ui_stack: UIStack, page: Page) -> None:
    """Sign in, open New Token (focus in the dialog, trapped; Escape returns it), create, copy
    with Space, Escape keeps the key, Enter on "I have stored it" shows the list."""
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await sign_in_by_keyboard(page, ui_stack.member)

    await focus_by_tab(page, "#new-token")
    await page.keyboard.press("Enter")
    await expect(page.locator("dialog#create-dialog")).to_be_visible()
    assert await focused(page, "dialog#create-dialog input[name=name]")
    await assert_tab_stays_in(page, "dialog#create-dialog")
    await page.keyboard.press("Escape")
    await expect(page.locator("dialog#create-dialog")).to_be_hidden()
    assert await focused(page, "#new-token"), "closing the dialog lost the focus"

    await page.keyboard.press("Space")
    await expect(page.locator("dialog#create-dialog")).to_be_visible()
    await focus_by_tab(page, "form#create-form input[name=name]")
    await page.keyboard.type("typed")
    await page.keyboard.press("Enter")

    reveal = page.locator("dialog#reveal-dialog")
    await expect(reveal.locator("#token-value")).to_be_visible()
    token = (await reveal.locator("#token-value").inner_text()).strip()
    assert await focused(page, "#copy-token"), "the reveal dialog opened without focus on Copy"
    await page.keyboard.press("Space")
    await expect(reveal.locator(".copy-status")).to_have_text("Copied to the clipboard.")
    assert await page.evaluate("() => navigator.clipboard.readText()") == token
    await assert_tab_stays_in(page, "dialog#reveal-dialog")
    await page.keyboard.press("Escape")
    await expect(reveal.locator("#token-value")).to_be_visible()

    await focus_by_tab(page, "#reveal-done")
    await page.keyboard.press("Enter")
    await expect(token_rows(page)).to_contain_text("typed")
    await expect(reveal).to_be_hidden()
    await expect(page.locator(".flash")).to_contain_text("“typed” is ready")
    # The page moves focus once it has loaded, which may be after the banner is shown.
    await expect(page.locator(".flash")).to_be_focused()


async def test_revoke_with_confirmation_and_sign_out_by_keyboard(
    ui_stack: UIStack, page: Page
) -> None:
    """Revoke opens the confirmation on Cancel; Cancel gives focus back to the row's Revoke;
    confirming revokes; Sign out signs out."""
    ui_stack.cli("tokens", "create", "--email", ui_stack.member.email, "--name", "old key")
    await sign_in_by_keyboard(page, ui_stack.member)

    await focus_by_tab(page, REVOKE_BUTTON)
    await page.keyboard.press("Enter")
    dialog = page.locator("dialog#revoke-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("old key")
    assert await focused(page, "dialog#revoke-dialog [data-close-dialog]"), "focus not on Cancel"
    await assert_tab_stays_in(page, "dialog#revoke-dialog", presses=4)
    await focus_by_tab(page, "dialog#revoke-dialog [data-close-dialog]")
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    assert await focused(page, REVOKE_BUTTON), "Cancel did not give focus back to Revoke"
    assert [t["status"] for t in await ui_stack.tokens_of(ui_stack.member)] == ["active"]

    await page.keyboard.press("Enter")
    await expect(dialog).to_be_visible()
    await focus_by_tab(page, "#revoke-confirm")
    await page.keyboard.press("Enter")
    await expect(page.locator(".flash")).to_contain_text("“old key” was revoked")
    # The page moves focus once it has loaded, which may be after the banner is shown.
    await expect(page.locator(".flash")).to_be_focused()
    assert [t["status"] for t in await ui_stack.tokens_of(ui_stack.member)] == ["revoked"]

    await focus_by_tab(page, "form#logout-form [type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_url(at(LOGIN))


async def test_an_admin_filters_all_keys_by_keyboard(ui_stack: UIStack, page: Page) -> None:
    """An admin reaches All keys from the header and filters it by owner with Tab and Enter."""
    ui_stack.cli("tokens", "create", "--email", ui_stack.member.email, "--name", "member key")
    ui_stack.cli("tokens", "create", "--email", ui_stack.admin.email, "--name", "admin key")
    await sign_in_by_keyboard(page, ui_stack.admin)

    await focus_by_tab(page, f"nav a[href='{ADMIN}']")
    await page.keyboard.press("Enter")
    await page.wait_for_url(at(ADMIN))
    await expect(token_rows(page)).to_have_count(2)
    await focus_by_tab(page, "form#filters input[name=user]")
    await page.keyboard.type("member@")
    await page.keyboard.press("Enter")
    await page.wait_for_url(lambda url: "user=member%40" in url)
    await expect(token_rows(page)).to_have_count(1)
    await expect(token_rows(page)).to_contain_text("member key")
    await expect(page.locator(".result-count")).to_contain_text("1 key matches the filters")
