"""The internal secret between the admin UI and the introspector: a mismatch is reported as the
misconfiguration it is (never as a wrong password), and it can be rotated without downtime."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from admin_ui import csrf
from admin_ui.app import create_app as create_admin_ui
from admin_ui.settings import AdminUISettings
from introspector import users
from introspector.models import Actor
from keygate_cli.settings import load_settings
from keygate_core.token_format import generate_token
from tests.harness.stack import API, INTERNAL_SECRET, StartIntrospector, StartStack

NEW_SECRET = "new-internal-secret-0123456789abcdef0123"
OTHER_SECRET = "some-other-secret-0123456789abcdef01234"
LOGIN_TOKEN = "l" * 43


async def start_ui(aiohttp_client: Any, introspector_url: str, secret: str, **extra: str) -> Any:
    settings = load_settings(
        AdminUISettings,
        {
            "KEYGATE_INTROSPECTOR_URL": introspector_url,
            "KEYGATE_INTERNAL_SECRET": secret,
            **extra,
        },
    )
    return await aiohttp_client(create_admin_ui(settings))


def login_request(secret: str) -> dict[str, Any]:
    """A login form submission as the gateway passes it on."""
    return {
        "data": {"email": "dev@example.com", "password": "correct horse", "csrf": LOGIN_TOKEN},
        "headers": {"X-Keygate-Internal-Secret": secret, "Cookie": f"kg_csrf={LOGIN_TOKEN}"},
        "allow_redirects": False,
    }


async def test_a_wrong_internal_secret_is_unavailable_not_a_wrong_password(
    start_introspector: StartIntrospector, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """UI and introspector disagree on the secret: 503 "temporarily unavailable", cause logged."""
    introspector = await start_introspector(KEYGATE_INTERNAL_SECRET=OTHER_SECRET)
    await users.create_user(
        introspector.db,
        introspector.hasher,
        Actor.operator(),
        email="dev@example.com",
        password="correct horse",
    )
    url = str(introspector.client.make_url("")).rstrip("/")
    ui = await start_ui(aiohttp_client, url, INTERNAL_SECRET)
    caplog.set_level(logging.ERROR, logger="keygate.admin_ui")
    login = await ui.post("/_keygate/login", **login_request(INTERNAL_SECRET))
    page = await login.text()
    assert login.status == 503, page
    assert "Incorrect e-mail or password" not in page
    assert "temporarily unavailable" in page.lower()
    signed_in = {
        "X-Keygate-Internal-Secret": INTERNAL_SECRET,
        "X-Keygate-User-Id": "00000000-0000-0000-0000-000000000001",
        "X-Keygate-Auth-Method": "session",
        "Cookie": "kg_session=some-session",
    }
    keys = await ui.get("/settings/api-keys", headers=signed_in, allow_redirects=False)
    assert keys.status == 503, keys.headers.get("Location")
    assert any("KEYGATE_INTERNAL_SECRET" in r.getMessage() for r in caplog.records)


async def test_the_introspector_names_a_wrong_internal_secret(
    start_introspector: StartIntrospector,
) -> None:
    """Its refusal has its own reason, distinct from a caller who is not signed in."""
    introspector = await start_introspector()
    wrong = await introspector.client.get(
        f"{API}/whoami", headers={"X-Keygate-Internal-Secret": OTHER_SECRET}
    )
    assert wrong.status == 401
    assert (await wrong.json())["reason"] == "internal_secret_refused"
    anonymous = await introspector.client.get(f"{API}/whoami", headers=introspector.headers())
    assert (await anonymous.json())["reason"] == "unauthenticated"


async def test_during_a_rotation_both_secrets_are_accepted(
    start_introspector: StartIntrospector,
) -> None:
    """With KEYGATE_INTERNAL_SECRET_PREVIOUS the old and the new secret pass; any other fails."""
    introspector = await start_introspector(
        KEYGATE_INTERNAL_SECRET=NEW_SECRET, KEYGATE_INTERNAL_SECRET_PREVIOUS=INTERNAL_SECRET
    )
    for secret, reason in (
        (NEW_SECRET, "unauthenticated"),
        (INTERNAL_SECRET, "unauthenticated"),
        (OTHER_SECRET, "internal_secret_refused"),
    ):
        answer = await introspector.client.get(
            f"{API}/whoami", headers={"X-Keygate-Internal-Secret": secret}
        )
        assert (await answer.json())["reason"] == reason, secret


async def test_forms_signed_before_a_rotation_still_submit(
    start_introspector: StartIntrospector, aiohttp_client: Any
) -> None:
    """A page rendered by a UI on the old secret posts fine to a UI already on the new one."""
    introspector = await start_introspector(
        KEYGATE_INTERNAL_SECRET=NEW_SECRET, KEYGATE_INTERNAL_SECRET_PREVIOUS=INTERNAL_SECRET
    )
    url = str(introspector.client.make_url("")).rstrip("/")
    ui = await start_ui(
        aiohttp_client, url, NEW_SECRET, KEYGATE_INTERNAL_SECRET_PREVIOUS=INTERNAL_SECRET
    )
    old_token = csrf.session_token(csrf.derive_key(INTERNAL_SECRET), "some-session")
    headers = {"X-Keygate-Internal-Secret": INTERNAL_SECRET, "Cookie": "kg_session=some-session"}
    logout = await ui.post(
        "/_keygate/logout", data={"csrf": old_token}, headers=headers, allow_redirects=False
    )
    assert logout.status == 303, await logout.text()
    forged = await ui.post(
        "/_keygate/logout", data={"csrf": "0" * 64}, headers=headers, allow_redirects=False
    )
    assert forged.status == 403


async def test_a_gateway_with_another_secret_answers_503_and_says_why(
    start_stack: StartStack, caplog: pytest.LogCaptureFixture
) -> None:
    """Bearer requests get 503 (never 401) and the log names KEYGATE_INTERNAL_SECRET, once."""
    stack = await start_stack(introspector_env_extra={"KEYGATE_INTERNAL_SECRET": OTHER_SECRET})
    token, _ = generate_token()
    caplog.set_level(logging.ERROR, logger="keygate.gateway")
    for _ in range(3):
        response = await stack.gateway.get("/x", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 503, await response.text()
    named = [r for r in caplog.records if "KEYGATE_INTERNAL_SECRET" in r.getMessage()]
    assert len(named) == 1
