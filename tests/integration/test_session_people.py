"""People of the app behind the `upstream` session authenticator become keygate users.

The session check's answer (the app's user id and e-mail) is what keygate knows of them: the
first visit creates or links a keygate user, e-mail clashes are refused, and nobody can claim
to be such a person from outside.
"""

from __future__ import annotations

import asyncio

import pytest

from introspector import users
from introspector.models import Actor
from tests.harness.stack import API
from tests.harness.ui_stack import KEYGATE
from tests.harness.upstream_sessions import Sessions, StartSessions

WHOAMI = "/api/platform/internal/whoami"
#: The introspector opted in to linking existing people by a verified e-mail.
LINKING = {"KEYGATE_LINK_USERS_BY_EMAIL": "true"}


async def test_a_person_of_the_app_is_known_to_keygate_by_the_apps_id(sessions: Sessions) -> None:
    """First sight creates the keygate user; later visits find the same one, not a second."""
    first = await sessions.get(WHOAMI, Cookie="sid=valid-app-7; email=New.Person@example.com")
    assert first.status == 200, await first.text()
    me = await first.json()
    assert (me["email"], me["authMethod"]) == ("new.person@example.com", "session")
    again = await sessions.get(WHOAMI, Cookie="sid=valid-app-7; email=new.person@example.com")
    assert (await again.json())["userId"] == me["userId"]


async def test_an_admin_is_never_taken_over_by_an_app_account_with_their_email(
    start_sessions: StartSessions,
) -> None:
    """Even opted in and "verified", an app user claiming an admin's e-mail gets no admin power."""
    sessions = await start_sessions(introspector_env_extra=LINKING)
    ki = sessions.stack.introspector
    admin = await ki.user("ops@example.com", admin=True)
    attacker = "sid=valid-attacker; email=Ops@Example.com; verified=1"
    whoami = await sessions.get(WHOAMI, Cookie=attacker)
    assert whoami.status == 409, await whoami.text()
    assert (await whoami.json())["field"] == "email"
    minted = await sessions.stack.gateway.post(
        f"{API}/api-tokens", json={"name": "x"}, headers={"Cookie": attacker}
    )
    assert minted.status == 409, await minted.text()
    external = await ki.db.fetchval("SELECT external_id FROM users WHERE id = $1", admin.id)
    assert external is None
    assert await ki.db.fetchval("SELECT count(*) FROM api_token") == 0
    assert await ki.db.fetchval("SELECT count(*) FROM users") == 1


@pytest.mark.parametrize(
    ("opt_in", "verified", "password", "linked"),
    [
        (False, True, None, False),
        (True, False, None, False),
        (True, True, "correct horse", False),
        (True, True, None, True),
    ],
    ids=["not opted in", "e-mail not verified", "has a password", "opted in and verified"],
)
async def test_an_existing_person_is_linked_only_when_opted_in_verified_and_plain(
    start_sessions: StartSessions,
    opt_in: bool,
    verified: bool,
    password: str | None,
    linked: bool,
) -> None:
    """Linking by e-mail needs the opt-in, `emailVerified: true` and a person without password."""
    sessions = await start_sessions(introspector_env_extra=LINKING if opt_in else {})
    ki = sessions.stack.introspector
    existing = await users.create_user(
        ki.db, ki.hasher, Actor.operator(), email="dev@example.com", password=password
    )
    cookie = "sid=valid-app-9; email=dev@example.com" + ("; verified=1" if verified else "")
    response = await sessions.get(WHOAMI, Cookie=cookie)
    external = await ki.db.fetchval("SELECT external_id FROM users WHERE id = $1", existing.id)
    events = await ki.db.fetchval(
        "SELECT count(*) FROM audit_event WHERE action = 'user.link_external'"
    )
    if linked:
        assert response.status == 200, await response.text()
        assert (await response.json())["userId"] == str(existing.id)
        assert (external, events) == ("app-9", 1)
    else:
        assert response.status == 409, await response.text()
        assert "keygate users link" in (await response.json())["detail"]
        assert (external, events) == (None, 0)


async def test_an_operator_links_an_admin_to_their_app_account(
    sessions: Sessions, keygate_env: dict[str, str]
) -> None:
    """`keygate users link` is the way to give an app account an admin's keygate identity."""
    ki = sessions.stack.introspector
    admin = await ki.user("ops@example.com", admin=True)
    done = await asyncio.create_subprocess_exec(
        *(KEYGATE, "users", "link", "--email", "ops@example.com", "--external-id", "app-ops"),
        env=keygate_env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(done.communicate(), timeout=60)
    assert done.returncode == 0, stderr
    response = await sessions.get(WHOAMI, Cookie="sid=valid-app-ops; email=ops@example.com")
    assert response.status == 200, await response.text()
    assert (await response.json())["userId"] == str(admin.id)
    event = await ki.db.fetchrow(
        "SELECT actor_kind, details FROM audit_event WHERE action = 'user.link_external'"
    )
    assert event is not None
    assert "app-ops" in str(event["details"])


async def test_an_email_linked_to_another_app_user_is_refused(sessions: Sessions) -> None:
    """A second app person with an e-mail already linked to another is refused: 409 on email."""
    ok = await sessions.get(WHOAMI, Cookie="sid=valid-app-1; email=shared@example.com")
    assert ok.status == 200
    clash = await sessions.get(WHOAMI, Cookie="sid=valid-app-2; email=shared@example.com")
    assert clash.status == 409, await clash.text()
    assert (await clash.json())["field"] == "email"


async def test_without_an_email_nobody_is_created(sessions: Sessions) -> None:
    """A session check answer without an e-mail is refused (400 on email) and creates no user."""
    response = await sessions.get(WHOAMI, Cookie="sid=valid-app-3; email=")
    assert response.status == 400, await response.text()
    assert (await response.json())["field"] == "email"
    count = await sessions.stack.introspector.db.fetchval("SELECT count(*) FROM users")
    assert count == 0


async def test_clients_cannot_claim_to_be_a_person_of_the_app(sessions: Sessions) -> None:
    """The source header is keygate's own: sent by a client, it is stripped like the others."""
    forged = {
        "X-Keygate-Identity-Source": "upstream",
        "X-Keygate-User-Id": "app-admin",
        "X-Keygate-User-Email": "ops@example.com",
        "X-Keygate-Auth-Method": "session",
        "X-Keygate-Email-Verified": "true",
    }
    response = await sessions.get(WHOAMI, **forged)
    assert response.status == 401, await response.text()
    count = await sessions.stack.introspector.db.fetchval("SELECT count(*) FROM users")
    assert count == 0
