"""The scopes a person may use: whoami's ``scopes`` per edition and role (BC-19), and the create
form's Scope choices, which the admin UI takes from it (BC-31).

The community edition offers PERSONAL only, whoever asks. The enterprise edition adds WORKSPACE
for admins of a workspace and ORGANIZATION for organisation admins.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest

from admin_ui.app import create_app as create_admin_ui
from admin_ui.settings import AdminUISettings
from introspector import users
from introspector.models import Actor, Role, User
from keygate_cli.settings import load_settings
from tests.harness.servers import free_port
from tests.harness.stack import (
    API,
    INTERNAL_SECRET,
    Introspector,
    Stack,
    StartIntrospector,
    StartStack,
)

PASSWORD = "correct horse battery"
ENTERPRISE = {"KEYGATE_EDITION": "enterprise"}
COMMUNITY = {"KEYGATE_EDITION": "community"}
#: Each person: organisation admin?, their role in the workspace "Acme" (None: not a member).
PEOPLE: dict[str, tuple[bool, Role | None]] = {
    "org-admin": (True, None),
    "org-and-ws-admin": (True, Role.ADMIN),
    "ws-admin": (False, Role.ADMIN),
    "member": (False, Role.MEMBER),
}
EXPECTED = {
    "enterprise": {
        "org-admin": ["PERSONAL", "ORGANIZATION"],
        "org-and-ws-admin": ["PERSONAL", "WORKSPACE", "ORGANIZATION"],
        "ws-admin": ["PERSONAL", "WORKSPACE"],
        "member": ["PERSONAL"],
    },
    "community": {name: ["PERSONAL"] for name in PEOPLE},
}
EDITIONS = {"enterprise": ENTERPRISE, "community": COMMUNITY}


async def cast_people(ki: Introspector) -> dict[str, User]:
    """Everyone in :data:`PEOPLE`, with :data:`PASSWORD`, and the workspace Acme."""
    people = {
        name: await users.create_user(
            ki.db,
            ki.hasher,
            Actor.operator(),
            email=f"{name}@example.com",
            password=PASSWORD,
            is_admin=org_admin,
        )
        for name, (org_admin, _) in PEOPLE.items()
    }
    roles = {people[name]: role for name, (_, role) in PEOPLE.items() if role is not None}
    await ki.workspace("Acme", roles)
    return people


@pytest.mark.parametrize("edition", ["enterprise", "community"])
async def test_a_session_s_scopes_follow_edition_and_role(
    start_introspector: StartIntrospector, edition: str
) -> None:
    """A session's whoami: PERSONAL for all; enterprise adds WORKSPACE, ORGANIZATION by role."""
    ki = await start_introspector(**EDITIONS[edition])
    people = await cast_people(ki)
    for name, person in people.items():
        response = await ki.client.get(f"{API}/whoami", headers=ki.headers(person))
        assert response.status == 200, await response.text()
        assert (await response.json())["scopes"] == EXPECTED[edition][name], (edition, name)


async def test_a_token_s_scopes_are_its_own_scope(start_introspector: StartIntrospector) -> None:
    """whoami with a token names that token's scope only, even for an organisation admin."""
    ki = await start_introspector(**ENTERPRISE)
    admin = (await cast_people(ki))["org-admin"]
    for scope in ("PERSONAL", "ORGANIZATION"):
        created = await ki.create_ok(admin, name=f"{scope} key", scope=scope)
        headers = ki.headers(admin, token_id=created["id"])
        response = await ki.client.get(f"{API}/whoami", headers=headers)
        assert (await response.json())["scopes"] == [scope]


class ScopeOptions(HTMLParser):
    """The values of the ``<option>``s of the create form's ``select#token-scope``."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "select":
            self._inside = found.get("id") == "token-scope"
        elif tag == "option" and self._inside:
            self.values.append(found.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._inside = False


async def ui_stack(start_stack: StartStack, aiohttp_server: Any, edition: str) -> Stack:
    """Gateway (local sessions), introspector in ``edition`` and admin UI, all in process."""
    ui_port = free_port()
    stack = await start_stack(
        KEYGATE_SESSION_AUTHENTICATOR="local",
        KEYGATE_ADMIN_UI_URL=f"http://127.0.0.1:{ui_port}",
        introspector_env_extra=EDITIONS[edition],
    )
    env = {
        "KEYGATE_INTROSPECTOR_URL": str(stack.introspector.client.make_url("")).rstrip("/"),
        "KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET,
    }
    await aiohttp_server(create_admin_ui(load_settings(AdminUISettings, env)), port=ui_port)
    return stack


async def scope_choices(stack: Stack, email: str, page: str) -> list[str]:
    """Sign in as ``email`` through the gateway; the Scope options ``page`` renders."""
    origin = str(stack.gateway.make_url("")).rstrip("/")
    # No cookie jar: each sign-in starts from nothing, and the cookies sent are the ones named.
    async with aiohttp.ClientSession(origin, cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get("/_keygate/login") as login:
            csrf = login.cookies["kg_csrf"].value
        async with http.post(
            "/_keygate/login",
            data={"csrf": csrf, "email": email, "password": PASSWORD},
            headers={"Cookie": f"kg_csrf={csrf}", "Origin": origin},
            allow_redirects=False,
        ) as signed_in:
            assert signed_in.status == 303, await signed_in.text()
            session = signed_in.cookies["kg_session"].value
        async with http.get(page, headers={"Cookie": f"kg_session={session}"}) as response:
            assert response.status == 200, await response.text()
            parser = ScopeOptions()
            parser.feed(await response.text())
    return parser.values


@pytest.mark.parametrize("edition", ["enterprise", "community"])
async def test_the_create_form_offers_only_the_scopes_the_person_may_use(
    start_stack: StartStack, aiohttp_server: Any, edition: str
) -> None:
    """The rendered Scope <option>s, in the list's dialog and on the no-JS page, are whoami's."""
    stack = await ui_stack(start_stack, aiohttp_server, edition)
    await cast_people(stack.introspector)
    for name in PEOPLE:
        for page in ("/settings/api-keys", "/settings/api-keys/new"):
            offered = await scope_choices(stack, f"{name}@example.com", page)
            assert offered == EXPECTED[edition][name], (edition, name, page)
