"""Device cookies: a guess spread over many addresses does not lock the owner's browser out.

Wrong passwords for one e-mail from many addresses exhaust its per-e-mail budget, after which
every sign-in for it gets 429 — the owner's too, unless they present the device token their
browser got at an earlier successful sign-in (OWASP "Slow Down Online Guessing Attacks with Device
Cookies"). Such a sign-in is counted per device instead; a token of another account, an edited,
expired or unsigned one is no device token.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from introspector.device_cookies import DeviceCookies, device_cookie_keys
from keygate_core.internal_secret import InternalSecrets
from tests.harness.stack import INTERNAL_SECRET, Introspector, StartIntrospector
from tests.reliability.test_lockout_attacks import PASSWORD, with_password

BUDGET = {"KEYGATE_FAILED_LOGIN_LIMIT_PER_ACCOUNT": "20"}


async def sign_in(
    ki: Introspector, email: str, password: str, address: str, device: str | None = None
) -> tuple[int, Any]:
    body = {"email": email, "password": password}
    if device is not None:
        body["deviceToken"] = device
    response = await ki.client.post(
        "/sessions", json=body, headers={**ki.headers(), "X-Keygate-Client-Address": address}
    )
    return response.status, await response.json()


async def device_of(ki: Introspector, email: str, address: str = "198.51.100.20") -> str:
    """The device token a browser gets for signing in as ``email``."""
    status, body = await sign_in(ki, email, PASSWORD, address)
    assert status == 201, body
    token: str = body["deviceToken"]
    assert body["deviceTokenExpiresAt"] > body["expiresAt"]
    return token


async def spread_guesses(ki: Introspector, email: str, count: int = 20) -> None:
    """``count`` wrong passwords for ``email``, each from another address."""
    statuses = Counter(
        [(await sign_in(ki, email, f"guess {i}", f"203.0.113.{i + 1}"))[0] for i in range(count)]
    )
    assert statuses == {401: count}


async def test_the_owners_device_token_signs_in_when_the_e_mail_budget_is_spent(
    start_introspector: StartIntrospector,
) -> None:
    """After 20 guesses from 20 addresses: with the device token 201, without it 429."""
    ki = await start_introspector(**BUDGET)
    await with_password(ki, "alice@example.com")
    await with_password(ki, "bob@example.com")
    device = await device_of(ki, "alice@example.com")
    bobs = await device_of(ki, "bob@example.com")
    await spread_guesses(ki, "alice@example.com")

    # Without a device token the budget still protects the account, from any address.
    assert (await sign_in(ki, "alice@example.com", PASSWORD, "198.51.100.20"))[0] == 429
    assert (await sign_in(ki, "alice@example.com", PASSWORD, "198.51.100.21"))[0] == 429
    status, body = await sign_in(ki, "alice@example.com", PASSWORD, "198.51.100.20", device)
    assert status == 201, body
    assert body["deviceToken"] != device  # a fresh one on every sign-in

    # Another account's token, an edited one, an expired one and one signed with another key
    # are no device token.
    issued = time.time() - 366 * 24 * 3600
    keys = device_cookie_keys(InternalSecrets(INTERNAL_SECRET))
    expired = DeviceCookies(keys, 365 * 24 * 3600).issue("alice@example.com", now=issued)
    foreign = device_cookie_keys(InternalSecrets("another-internal-secret-0123456789"))
    unsigned = DeviceCookies(foreign, 365 * 24 * 3600).issue("alice@example.com")
    nonce = device.split(".")[1]
    edited = device.replace(nonce, nonce[::-1])
    for token in (bobs, edited, expired, unsigned, "v1.x.1.y", "garbage"):
        status, body = await sign_in(ki, "alice@example.com", PASSWORD, "198.51.100.20", token)
        assert status == 429, (token, body)


async def test_a_stolen_device_token_gets_ten_guesses_a_minute(
    start_introspector: StartIntrospector,
) -> None:
    """With the budget spent, a stolen token allows 10 wrong passwords, then nothing more."""
    ki = await start_introspector(**BUDGET)
    await with_password(ki, "alice@example.com")
    device = await device_of(ki, "alice@example.com")
    await spread_guesses(ki, "alice@example.com")
    stolen = [
        (await sign_in(ki, "alice@example.com", f"stolen {i}", f"192.0.2.{i + 1}", device))[0]
        for i in range(12)
    ]
    assert Counter(stolen) == {401: 10, 429: 2}
    # Locked, the token counts as none: the spent budget refuses even the right password.
    assert (await sign_in(ki, "alice@example.com", PASSWORD, "192.0.2.50", device))[0] == 429


async def test_a_device_token_survives_an_internal_secret_rotation(
    start_introspector: StartIntrospector,
) -> None:
    """Issued under the previous internal secret, the token still helps during the overlap."""
    before = await start_introspector(**BUDGET)
    await with_password(before, "alice@example.com")
    device = await device_of(before, "alice@example.com")
    rotated = "rotated-internal-secret-0123456789ab"
    ki = await start_introspector(
        KEYGATE_INTERNAL_SECRET=rotated, KEYGATE_INTERNAL_SECRET_PREVIOUS=INTERNAL_SECRET, **BUDGET
    )
    await spread_guesses(ki, "alice@example.com")
    assert (await sign_in(ki, "alice@example.com", PASSWORD, "198.51.100.20"))[0] == 429
    status, body = await sign_in(ki, "alice@example.com", PASSWORD, "198.51.100.20", device)
    assert status == 201, body
