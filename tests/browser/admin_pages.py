"""The admin UI's pages as the browser tests drive them: paths, element ids, forms.

Paths and element ids are the UI contract's. Each helper does what a person would (log in, open
the create dialog, press Tab) or what a script forging a request would (post a form directly).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from playwright.async_api import Locator, Page, expect

from keygate_core.token_format import SCANNER_REGEX
from tests.harness.ui_stack import Person, UIStack

LOGIN = "/_keygate/login"
TABLE = "/settings/api-keys"
ADMIN = "/settings/api-keys/admin"
AUDIT = "/settings/api-keys/audit"
PEOPLE = "/settings/api-keys/users"


def at(path: str) -> Any:
    """A URL predicate for ``wait_for_url``: the page is at ``path`` (any query)."""
    return lambda url: urlsplit(url).path == path


async def log_in(page: Page, person: Person) -> None:
    """Fill and submit the login form the page shows; wait to land on the keys table."""
    form = page.locator("form#login-form")
    await form.locator("input[name=email]").fill(person.email)
    await form.locator("input[name=password]").fill(person.password)
    await form.locator("button[type=submit]").click()
    await page.wait_for_url(at(TABLE))


async def create_in_dialog(page: Page, name: str) -> str:
    """Create a token with the table's dialog; the revealed plaintext."""
    await page.locator("#new-token").click()
    dialog = page.locator("dialog#create-dialog")
    await expect(dialog).to_be_visible()
    await dialog.locator("form#create-form input[name=name]").fill(name)
    await dialog.locator("form#create-form [type=submit]").click()
    return await revealed_token(page)


async def revealed_token(page: Page) -> str:
    """The plaintext on the reveal page, checked to look like a keygate token."""
    value = page.locator("#reveal code#token-value")
    await expect(value).to_be_visible()
    token = (await value.inner_text()).strip()
    assert re.fullmatch(SCANNER_REGEX, token), token
    return token


def token_rows(page: Page) -> Locator:
    return page.locator("table#tokens tr[data-token-id]")


async def focus_by_tab(page: Page, selector: str, presses: int = 25) -> None:
    """Press Tab until the focused element matches ``selector``."""
    for _ in range(presses):
        if await page.evaluate("s => !!document.activeElement?.matches(s)", selector):
            return
        await page.keyboard.press("Tab")
    focused = await page.evaluate("() => document.activeElement?.outerHTML.slice(0, 200)")
    raise AssertionError(f"{presses} Tab presses never reached {selector}; focus is on {focused}")


async def session_cookie(page: Page) -> str:
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert "kg_session" in cookies, f"no kg_session cookie after login: {sorted(cookies)}"
    return cookies["kg_session"]


async def create_form_fields(page: Page) -> dict[str, str]:
    """Every field of a freshly loaded create form (csrf, one-time nonce, scope, ...)."""
    await page.goto(TABLE)
    fields: dict[str, str] = await page.locator("form#create-form").evaluate(
        "form => Object.fromEntries(new FormData(form))"
    )
    assert fields.get("csrf") and fields.get("nonce"), fields
    return fields


async def post_form(
    stack: UIStack, path: str, cookie: str, data: dict[str, str], **headers: str
) -> tuple[int, str]:
    """POST a form through the gateway as a script, not the browser; status and body."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{stack.gateway_url}{path}",
            data=data,
            headers={"Cookie": f"kg_session={cookie}", **headers},
            allow_redirects=False,
        ) as response,
    ):
        return response.status, await response.text()
