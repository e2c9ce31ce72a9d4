"""The admin UI in a real Chromium, through a real gateway, against real services.

Element ids and paths are the UI contract's; every page visited is also saved as a screenshot
under ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, expect

from keygate_core.token_format import SCANNER_REGEX
from tests.browser.admin_pages import (
    ADMIN,
    AUDIT,
    LOGIN,
    TABLE,
    at,
    create_form_fields,
    create_in_dialog,
    log_in,
    post_form,
    revealed_token,
    session_cookie,
    token_rows,
)
from tests.harness.browser import Browsing, screenshot
from tests.harness.polling import eventually
from tests.harness.ui_stack import Person, UIStack


async def test_member_creates_uses_and_revokes_a_token(ui_stack: UIStack, page: Page) -> None:
    """Log in, create in the dialog; the key writes to the app as its owner; revoke → 401;
    logging out ends the session."""
    member = ui_stack.member
    await page.goto(LOGIN)
    await screenshot(page, "login")
    await log_in(page, member)
    await expect(page.locator("h1")).to_have_text("API keys")
    await expect(page.locator("#empty-state")).to_be_visible()
    await screenshot(page, "tokens-empty")

    await page.locator("#new-token").click()
    dialog = page.locator("dialog#create-dialog")
    await expect(dialog).to_be_visible()
    await dialog.locator("form#create-form input[name=name]").fill("deploy bot")
    await screenshot(page, "create-dialog")
    await dialog.locator("form#create-form [type=submit]").click()
    token = await revealed_token(page)
    await expect(page.locator("#reveal")).to_contain_text("will not be shown again")
    await screenshot(page, "reveal")

    status, body = await ui_stack.whoami(token)
    assert status == 200, body
    assert (body["userId"], body["email"]) == (member.id, member.email)
    await assert_the_key_writes_to_the_app_as(ui_stack, token, member)

    await page.locator("a#reveal-done").click()
    row = token_rows(page)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("deploy bot")
    await expect(row).to_contain_text(f"kg_{token.split('_')[1]}")
    await expect(row).to_contain_text("active")
    await screenshot(page, "tokens-one")

    await row.locator("form.revoke-form button").click()
    await expect(page.locator("dialog#revoke-dialog")).to_be_visible()
    await screenshot(page, "revoke-confirm")
    await page.locator("#revoke-confirm").click()
    await expect(page.locator(".flash")).to_be_visible()
    await expect(token_rows(page)).to_contain_text("revoked")
    await screenshot(page, "tokens-revoked")

    async def refused() -> bool:
        return (await write_to_the_app(ui_stack, token))[0] == 401

    # The design promises refusal everywhere within 1 s of the revoke.
    assert await eventually(refused, within=1.0)
    await assert_logging_out_ends_the_session(ui_stack, page)


NEW_RECORD = json.dumps({"title": "made with a key from the admin UI"}).encode()


async def write_to_the_app(stack: UIStack, token: str) -> tuple[int, dict[str, Any]]:
    """POST a JSON record to the protected app through the gateway with ``token``."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{stack.gateway_url}/upload",
            data=NEW_RECORD,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def assert_the_key_writes_to_the_app_as(stack: UIStack, token: str, owner: Person) -> None:
    """A write with the key reaches the app whole, as ``owner``, without the key itself (GS-28)."""
    before = len(stack.upstream.requests)
    status, body = await write_to_the_app(stack, token)
    assert status == 200, body
    assert body == {"size": len(NEW_RECORD), "sha256": hashlib.sha256(NEW_RECORD).hexdigest()}
    (received,) = stack.upstream.requests[before:]
    assert (received.method, received.raw_path) == ("POST", "/upload")
    assert received.header("X-Keygate-User-Id") == [owner.id]
    assert received.header("X-Keygate-User-Email") == [owner.email]
    assert received.header("X-Keygate-Auth-Method") == ["token"]
    assert received.header("X-Keygate-Token-Scope") == ["PERSONAL"]
    assert received.header("Authorization") == []


async def assert_logging_out_ends_the_session(ui_stack: UIStack, page: Page) -> None:
    """Log out: the browser, and a script replaying the old session cookie, get the login."""
    cookie = await session_cookie(page)
    await page.locator("form#logout-form [type=submit]").click()
    await page.wait_for_url(at(LOGIN))
    await page.goto(TABLE)
    assert urlsplit(page.url).path == LOGIN
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{ui_stack.gateway_url}{TABLE}",
            headers={"Cookie": f"kg_session={cookie}"},
            allow_redirects=False,
        ) as response,
    ):
        assert response.status == 303, "the logged-out session cookie still opens the table"
        assert urlsplit(response.headers["Location"]).path == LOGIN


async def test_pages_need_a_login_and_admin_pages_need_an_admin(
    ui_stack: UIStack, browsing: Browsing
) -> None:
    """Anonymous → login; member → 403 on admin pages; an admin sees all tokens, audit, usage."""
    token = ui_stack.cli(
        "tokens", "create", "--email", ui_stack.member.email, "--name", "member cli"
    )
    for _ in range(3):
        assert (await ui_stack.whoami(token))[0] == 200
    (member_token,) = await ui_stack.tokens_of(ui_stack.member)

    page = await browsing.new_page()
    await page.goto(TABLE)
    assert urlsplit(page.url).path == LOGIN
    assert parse_qs(urlsplit(page.url).query).get("next") == [TABLE]
    await expect(page.locator("form#login-form")).to_be_visible()

    wrong = Person(ui_stack.member.id, ui_stack.member.email, "not-the-password")
    form = page.locator("form#login-form")
    await form.locator("input[name=email]").fill(wrong.email)
    await form.locator("input[name=password]").fill(wrong.password)
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".error-banner")).to_contain_text("Incorrect e-mail or password.")
    await screenshot(page, "login-failed")
    await log_in(page, ui_stack.member)

    for path in (ADMIN, AUDIT):
        response = await page.goto(path)
        assert response is not None and response.status == 403, path
        await expect(page.locator(".error-banner")).to_be_visible()
        await expect(page.locator(f"tr[data-token-id='{member_token['id']}']")).to_have_count(0)
    await screenshot(page, "forbidden")

    admin = await browsing.new_page()
    await admin.goto(LOGIN)
    await log_in(admin, ui_stack.admin)
    response = await admin.goto(ADMIN)
    assert response is not None and response.status == 200
    await expect(admin.locator("form#filters")).to_be_visible()
    row = admin.locator(f"tr[data-token-id='{member_token['id']}']")
    await expect(row).to_contain_text(ui_stack.member.email)
    await expect(row).to_contain_text("member cli")
    await screenshot(admin, "admin-tokens")

    await admin.locator("form#filters input[name=user]").fill("admin@")
    await admin.locator("form#filters input[name=user]").press("Enter")
    await expect(row).to_have_count(0)
    await screenshot(admin, "admin-tokens-filtered")

    await admin.goto(AUDIT)
    audit = admin.locator("table#audit")
    await expect(audit).to_be_visible()
    await expect(audit.locator("tbody tr").first).to_be_visible()
    await screenshot(admin, "audit")

    response = await admin.goto(f"{TABLE}/{member_token['id']}/usage")
    assert response is not None and response.status == 200
    await expect(admin.locator("svg#usage-chart")).to_be_visible()
    await screenshot(admin, "usage")


async def test_forged_posts_change_nothing(ui_stack: UIStack, page: Page) -> None:
    """Create/revoke POSTs without csrf, from a foreign Origin or cross-site: 403, no change."""
    await page.goto(LOGIN)
    await log_in(page, ui_stack.member)
    cookie = await session_cookie(page)

    forgeries: list[tuple[str, bool, dict[str, str]]] = [
        ("no csrf field", False, {}),
        ("foreign Origin", True, {"Origin": "http://evil.example"}),
        ("cross-site fetch", True, {"Sec-Fetch-Site": "cross-site"}),
    ]
    for what, with_csrf, headers in forgeries:
        fields = await create_form_fields(page)
        fields["name"] = f"forged: {what}"
        if not with_csrf:
            del fields["csrf"]
        status, body = await post_form(ui_stack, TABLE, cookie, fields, **headers)
        assert status == 403, (what, body[:500])
        assert not re.search(SCANNER_REGEX, body), what
        assert await ui_stack.tokens_of(ui_stack.member) == [], what

    # The same request, done properly, works: the refusals above were the checks, not noise.
    fields = await create_form_fields(page)
    fields["name"] = "genuine"
    origin = ui_stack.gateway_url
    status, body = await post_form(ui_stack, TABLE, cookie, fields, Origin=origin)
    assert status == 200, body[:500]
    assert re.search(SCANNER_REGEX, body)
    (record,) = await ui_stack.tokens_of(ui_stack.member)

    await page.goto(TABLE)
    await expect(token_rows(page)).to_have_count(1)
    csrf = await page.locator("form.revoke-form input[name=csrf]").first.input_value()
    revoke = f"{TABLE}/{record['id']}/revoke"
    for what, data, headers in [
        ("no csrf field", {}, {}),
        ("foreign Origin", {"csrf": csrf}, {"Origin": "http://evil.example"}),
        ("cross-site fetch", {"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
    ]:
        status, body = await post_form(ui_stack, revoke, cookie, data, **headers)
        assert status == 403, (what, body[:500])
        assert [t["status"] for t in await ui_stack.tokens_of(ui_stack.member)] == ["active"], what


async def test_the_reveal_never_comes_back(ui_stack: UIStack, page: Page) -> None:
    """Reload of or Back to the reveal never shows the plaintext again nor creates another token."""
    await page.goto(LOGIN)
    await log_in(page, ui_stack.member)

    async with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path == TABLE
    ) as created:
        await create_in_dialog(page, "first")
    headers = (await created.value).headers
    assert headers.get("cache-control") == "no-store", headers
    assert headers.get("referrer-policy") == "no-referrer", headers
    assert "token" not in urlsplit(page.url).query

    await page.reload()
    assert urlsplit(page.url).path == TABLE
    await expect(token_rows(page)).to_have_count(1)
    await expect(page.locator("code#token-value")).to_have_count(0)
    await page.go_back()
    await expect(page.locator("code#token-value")).to_have_count(0)

    await page.goto(TABLE)
    await create_in_dialog(page, "second")
    await page.locator("a#reveal-done").click()
    await expect(token_rows(page)).to_have_count(2)
    refusal = ""
    try:
        await page.go_back()
    except PlaywrightError as exc:
        refusal = exc.message
    if refusal:
        # Chromium will not silently re-POST a no-store page: it shows its own error page,
        # and a reload from there re-sends the spent nonce.
        assert "ERR_CACHE_MISS" in refusal, refusal
        await expect(page.locator("code#token-value")).to_have_count(0)
        await page.reload()
    await expect(page.locator("code#token-value")).to_have_count(0)
    assert len(await ui_stack.tokens_of(ui_stack.member)) == 2
