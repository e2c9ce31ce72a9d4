"""The one-time reveal: a dialog over the keys list with JavaScript (BC-32), Copy that really
copies (BC-33), and the full reveal page without JavaScript."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import Page, expect

from tests.browser.admin_pages import LOGIN, TABLE, log_in, revealed_token, token_rows
from tests.harness.browser import Browsing, screenshot, watch_context
from tests.harness.ui_stack import UIStack

STORED = "Done — I have stored it safely"


async def test_the_key_is_revealed_in_a_dialog_over_the_list(ui_stack: UIStack, page: Page) -> None:
    """Create → a modal dialog over the list shows the key; Copy puts exactly the key on the
    clipboard; Escape and the backdrop keep it; "I have stored it" shows the list with the key."""
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.goto(LOGIN)
    await log_in(page, ui_stack.member)
    history = await page.evaluate("() => history.length")
    await page.get_by_role("button", name="New Token").click()
    create = page.get_by_role("dialog", name="New Token")
    await create.get_by_label("Name").fill("dialog bot")
    await create.get_by_role("button", name="Create key").click()

    reveal = page.get_by_role("dialog", name="“dialog bot” is ready")
    await expect(reveal).to_be_visible()
    await expect(create).to_be_hidden()
    token = await revealed_token(page)
    for fact in ("will not be shown again", "PERSONAL", f"kg_{token.split('_')[1]}", "never"):
        await expect(reveal).to_contain_text(fact)
    assert await page.evaluate("() => document.querySelector('#reveal-dialog').matches(':modal')")
    # Behind it, the list page: same address, no new history entry, nothing stored.
    assert urlsplit(page.url).path == TABLE and not urlsplit(page.url).query
    await expect(page.locator("main h1")).to_have_text("API keys")
    assert await page.evaluate("() => history.length") == history
    storage = "() => [localStorage.length, sessionStorage.length, document.cookie]"
    assert token not in str(await page.evaluate(storage))
    await screenshot(page, "reveal-dialog")

    await reveal.get_by_role("button", name="Copy").click()
    assert await page.evaluate("() => navigator.clipboard.readText()") == token
    await expect(reveal.locator(".copy-status")).to_have_text("Copied to the clipboard.")

    await page.keyboard.press("Escape")
    await page.keyboard.press("Escape")
    await page.mouse.click(5, 5)
    await expect(reveal).to_be_visible()
    await expect(reveal.locator("#token-value")).to_have_text(token)
    await expect(reveal.locator(".copy-status")).to_contain_text("shown only once")

    await reveal.get_by_role("link", name=STORED).click()
    await expect(token_rows(page)).to_have_count(1)
    await expect(token_rows(page)).to_contain_text("dialog bot")
    await expect(page.locator("#reveal-dialog")).not_to_be_visible()
    await page.go_back()
    await expect(page.locator("#token-value")).to_have_count(0)


async def test_a_refused_create_stays_in_the_dialog(ui_stack: UIStack, page: Page) -> None:
    """A create the API refuses shows its error in the dialog, on the named field, with a fresh
    form that then works."""
    await page.goto(LOGIN)
    await log_in(page, ui_stack.member)
    await page.get_by_role("button", name="New Token").click()
    create = page.get_by_role("dialog", name="New Token")
    nonce = await create.locator("input[name=nonce]").input_value()
    await create.get_by_role("button", name="Create key").click()

    await expect(create.get_by_role("alert")).to_contain_text("name")
    name = create.get_by_label("Name")
    await expect(name).to_have_attribute("aria-invalid", "true")
    await expect(name).to_be_focused()
    assert await create.locator("input[name=nonce]").input_value() != nonce
    assert await ui_stack.tokens_of(ui_stack.member) == []

    await name.fill("second try")
    await create.get_by_role("button", name="Create key").click()
    await revealed_token(page)
    await expect(page.get_by_role("dialog", name="“second try” is ready")).to_be_visible()
    await page.get_by_role("link", name=STORED).click()
    await expect(token_rows(page)).to_have_count(1)

    await page.get_by_role("button", name="New Token").click()
    await page.get_by_role("button", name="Cancel").click()
    await expect(create).to_be_hidden()
    await expect(page.get_by_role("button", name="New Token")).to_be_focused()


async def test_without_javascript_the_reveal_is_a_page(
    ui_stack: UIStack, browsing: Browsing
) -> None:
    """With JavaScript off, New Token is a link to the form page and the key is revealed on a
    page of its own, as before."""
    context = await browsing.browser.new_context(
        base_url=ui_stack.gateway_url, java_script_enabled=False
    )
    problems = await watch_context(context)
    try:
        page = await context.new_page()
        await page.goto(LOGIN)
        await log_in(page, ui_stack.member)
        await expect(page.locator("#new-token")).to_be_hidden()
        await page.get_by_role("link", name="New Token").click()
        await expect(page.locator("h1")).to_have_text("New Token")
        await page.get_by_label("Name").fill("no script")
        await page.get_by_role("button", name="Create key").click()
        await expect(page.locator("#reveal h1")).to_have_text("“no script” is ready")
        await revealed_token(page)
        await expect(page.locator("dialog[open]")).to_have_count(0)
        await screenshot(page, "reveal-no-js")
        await page.get_by_role("link", name=STORED).click()
        await expect(token_rows(page)).to_contain_text("no script")
    finally:
        await context.close()
    assert not problems.describe(), problems.describe()
