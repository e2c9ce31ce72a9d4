"""People of the app behind the `upstream` session authenticator become keygate users.

The session check's answer (the app's user id and e-mail) is what keygate knows of them: the
first visit creates or links a keygate user, e-mail clashes are refused, and nobody can claim
to be such a person from outside.
"""

from __future__ import annotations

from tests.harness.upstream_sessions import Sessions

WHOAMI = "/api/platform/internal/whoami"


async def test_a_person_of_the_app_is_known_to_keygate_by_the_apps_id(sessions: Sessions) -> None:
    """First sight creates the keygate user; later visits find the same one, not a second."""
    first = await sessions.get(WHOAMI, Cookie="sid=valid-app-7; email=New.Person@example.com")
    assert first.status == 200, await first.text()
    me = await first.json()
    assert (me["email"], me["authMethod"]) == ("new.person@example.com", "session")
    again = await sessions.get(WHOAMI, Cookie="sid=valid-app-7; email=new.person@example.com")
    assert (await again.json())["userId"] == me["userId"]


async def test_an_existing_keygate_user_is_linked_by_email(sessions: Sessions) -> None:
    """An app person whose e-mail a keygate user already has becomes that user, not a new one."""
    existing = await sessions.stack.introspector.user("ops@example.com", admin=True)
    response = await sessions.get(WHOAMI, Cookie="sid=valid-app-9; email=ops@example.com")
    assert response.status == 200, await response.text()
    assert (await response.json())["userId"] == str(existing.id)


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
    }
    response = await sessions.get(WHOAMI, **forged)
    assert response.status == 401, await response.text()
    count = await sessions.stack.introspector.db.fetchval("SELECT count(*) FROM users")
    assert count == 0
