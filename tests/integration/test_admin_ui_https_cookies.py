"""keygate's cookies over HTTPS come from configuration, not from a request header (security
review, finding 14).

The stack is the whole sign-in path: gateway (local sessions) → admin UI → introspector. With
``KEYGATE_PUBLIC_HTTPS=true`` — TLS at an ingress the gateway does not trust, so every request
arrives as plain HTTP and ``X-Forwarded-Proto`` says ``http`` — the cookies are still ``Secure``
and ``__Host-`` prefixed, pages send HSTS, a form from the ``https://`` origin is accepted, and
the gateway honours ``__Host-kg_session`` (and not a plain ``kg_session``).
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import pytest

from admin_ui.app import create_app as create_admin_ui
from admin_ui.settings import AdminUISettings
from introspector import users
from introspector.models import Actor
from keygate_cli.settings import load_settings
from tests.harness.servers import free_port
from tests.harness.stack import API, INTERNAL_SECRET, Stack, StartStack

PASSWORD = "correct horse battery"


async def signed_in_stack(
    start_stack: StartStack, aiohttp_server: Any, https: bool, **extra: str
) -> tuple[Stack, str]:
    """The stack with an admin UI in between, and a person who can sign in; their id."""
    ui_port = free_port()
    flag = {"KEYGATE_PUBLIC_HTTPS": "true"} if https else {}
    stack = await start_stack(
        KEYGATE_SESSION_AUTHENTICATOR="local",
        KEYGATE_ADMIN_UI_URL=f"http://127.0.0.1:{ui_port}",
        introspector_env_extra=extra,
        **flag,
    )
    env = {
        "KEYGATE_INTROSPECTOR_URL": str(stack.introspector.client.make_url("")).rstrip("/"),
        "KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET,
        **flag,
    }
    await aiohttp_server(create_admin_ui(load_settings(AdminUISettings, env)), port=ui_port)
    ki = stack.introspector
    user = await users.create_user(
        ki.db, ki.hasher, Actor.operator(), email="dev@example.com", password=PASSWORD
    )
    return stack, str(user.id)


def set_cookies(response: Any) -> dict[str, str]:
    """Each cookie the response sets: name → the whole Set-Cookie value."""
    found = {}
    for value in response.headers.getall("Set-Cookie", []):
        name = value.split("=", 1)[0]
        found[name] = value
    return found


async def sign_in(
    stack: Stack, login_csrf: str, token: str, origin: str, more_cookies: str = ""
) -> Any:
    """POST the login form through the gateway with its double-submit cookie."""
    return await stack.gateway.post(
        "/_keygate/login",
        data={"csrf": token, "email": "dev@example.com", "password": PASSWORD},
        headers={"Cookie": f"{login_csrf}={token}{more_cookies}", "Origin": origin},
        allow_redirects=False,
    )


async def test_over_https_cookies_are_secure_host_prefixed_and_honoured(
    start_stack: StartStack, aiohttp_server: Any
) -> None:
    """KEYGATE_PUBLIC_HTTPS: __Host- cookies with Secure and Path=/, HSTS, https:// forms."""
    stack, user_id = await signed_in_stack(start_stack, aiohttp_server, https=True)
    page = await stack.gateway.get("/_keygate/login")
    assert page.status == 200
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    login_cookie = set_cookies(page)["__Host-kg_csrf"]
    assert re.search(r"; ?Secure", login_cookie) and "Path=/;" in login_cookie + ";"
    assert "Domain" not in login_cookie
    token = SimpleCookie(login_cookie)["__Host-kg_csrf"].value
    # The browser is on https://: the gateway, behind TLS it does not know about, says http.
    origin = f"https://{stack.gateway.host}:{stack.gateway.port}"
    signed_in = await sign_in(stack, "__Host-kg_csrf", token, origin)
    assert signed_in.status == 303, await signed_in.text()
    session_cookie = set_cookies(signed_in)["__Host-kg_session"]
    assert re.search(r"; ?Secure", session_cookie) and "Path=/;" in session_cookie + ";"
    session_id = SimpleCookie(session_cookie)["__Host-kg_session"].value
    whoami = f"{API}/whoami"
    me = await stack.gateway.get(whoami, headers={"Cookie": f"__Host-kg_session={session_id}"})
    assert me.status == 200 and (await me.json())["userId"] == user_id
    # A cookie without the prefix could have been set by plain HTTP or a sibling subdomain.
    plain = await stack.gateway.get(whoami, headers={"Cookie": f"kg_session={session_id}"})
    assert plain.status == 401


@pytest.mark.parametrize("claimed", [None, "https"], ids=["no-header", "client-says-https"])
async def test_over_http_cookies_are_plain_whatever_the_request_claims(
    start_stack: StartStack, aiohttp_server: Any, claimed: str | None
) -> None:
    """Without the setting (make demo on http://): kg_ names, no Secure, no HSTS."""
    stack, _ = await signed_in_stack(start_stack, aiohttp_server, https=False)
    headers = {"X-Forwarded-Proto": claimed} if claimed else {}
    page = await stack.gateway.get("/_keygate/login", headers=headers)
    assert "Strict-Transport-Security" not in page.headers
    login_cookie = set_cookies(page)["kg_csrf"]
    assert "Secure" not in login_cookie
    token = SimpleCookie(login_cookie)["kg_csrf"].value
    origin = f"http://{stack.gateway.host}:{stack.gateway.port}"
    signed_in = await sign_in(stack, "kg_csrf", token, origin)
    assert signed_in.status == 303, await signed_in.text()
    assert "Secure" not in set_cookies(signed_in)["kg_session"]


async def test_a_browser_that_signed_in_before_signs_in_while_the_e_mail_budget_is_spent(
    start_stack: StartStack, aiohttp_server: Any
) -> None:
    """Sign-in sets __Host-kg_device (a year, HttpOnly, Strict); it is kept from the app, and
    with it the browser signs in after guesses from many addresses spent the e-mail's budget."""
    budget = {"KEYGATE_FAILED_LOGIN_LIMIT_PER_ACCOUNT": "5"}
    stack, _ = await signed_in_stack(start_stack, aiohttp_server, https=True, **budget)
    page = await stack.gateway.get("/_keygate/login")
    token = SimpleCookie(set_cookies(page)["__Host-kg_csrf"])["__Host-kg_csrf"].value
    origin = f"https://{stack.gateway.host}:{stack.gateway.port}"
    signed_in = await sign_in(stack, "__Host-kg_csrf", token, origin)
    assert signed_in.status == 303, await signed_in.text()
    device_cookie = set_cookies(signed_in)["__Host-kg_device"]
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert re.search(rf"; ?{attribute}(;|$)", device_cookie), (attribute, device_cookie)
    max_age = int(re.findall(r"Max-Age=(\d+)", device_cookie)[0])
    assert 31535000 < max_age <= 31536000
    device = f"; __Host-kg_device={SimpleCookie(device_cookie)['__Host-kg_device'].value}"

    session = SimpleCookie(set_cookies(signed_in)["__Host-kg_session"])["__Host-kg_session"].value
    app_request = f"theme=dark; __Host-kg_session={session}{device}"
    assert (await stack.gateway.get("/x", headers={"Cookie": app_request})).status == 200
    assert stack.upstream.last.header("Cookie") == ["theme=dark"]
    ki = stack.introspector
    for i in range(5):
        guess = await ki.client.post(
            "/sessions",
            json={"email": "dev@example.com", "password": f"guess {i}"},
            headers={**ki.headers(), "X-Keygate-Client-Address": f"203.0.113.{i + 1}"},
        )
        assert guess.status == 401
    assert (await sign_in(stack, "__Host-kg_csrf", token, origin)).status == 429
    again = await sign_in(stack, "__Host-kg_csrf", token, origin, device)
    assert again.status == 303, await again.text()
    assert "__Host-kg_device" in set_cookies(again)
