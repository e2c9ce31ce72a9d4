"""Ways in that a deactivation must close: a sign-in racing it (a login whose password check
began before the deactivation committed must not leave a live session behind it), and the
protected app's own sessions (upstream mode), which keep vouching for the person."""

from __future__ import annotations

import asyncio
from typing import Any

from argon2 import PasswordHasher

from introspector import users
from tests.harness.stack import API, Introspector
from tests.harness.upstream_sessions import Sessions
from tests.integration.test_user_lifecycle import PASSWORD, call, login, person

#: A hash that takes about a second to verify on the test machine, so the deactivation
#: certainly commits (and delivers its session purge) while the login is checking it.
SLOW = PasswordHasher(time_cost=24, memory_cost=65536, parallelism=1)
WHOAMI = f"{API}/whoami"


async def test_a_login_overtaken_by_a_deactivation_is_refused(
    introspector: Introspector, redis_client: Any
) -> None:
    """Password checked while the admin deactivates: the login answers 401 and no session of the
    person is left in Redis."""
    root = await person(introspector, "root@example.com", admin=True)
    alice = await person(introspector, "alice@example.com")
    await introspector.db.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1", alice.id, SLOW.hash(PASSWORD)
    )
    signing_in = asyncio.create_task(login(introspector, "alice@example.com", PASSWORD))
    await asyncio.sleep(0.3)  # the login has read the (active) user and is verifying
    assert not signing_in.done()
    deactivated = await call(introspector, root, "POST", f"/users/{alice.id}/deactivate")
    assert deactivated.status == 200
    assert not signing_in.done(), "the password check ended before the deactivation"
    response = await signing_in
    assert response.status == 401
    assert await redis_client.keys("kg:sess:*") == []


async def test_a_deactivated_person_of_the_app_is_refused(sessions: Sessions) -> None:
    """Upstream sessions: the app still vouches for a deactivated person, keygate refuses them
    (401 on whoami, no token for them)."""
    cookie = "sid=valid-app-9; email=leaver@example.com"
    first = await sessions.get(WHOAMI, Cookie=cookie)
    assert first.status == 200, await first.text()
    ki = sessions.stack.introspector
    root = await person(ki, "root@example.com", admin=True)
    leaver = await users.get_user_by_email(ki.db, "leaver@example.com")
    assert (await call(ki, root, "POST", f"/users/{leaver.id}/deactivate")).status == 200
    refused = await sessions.get(WHOAMI, Cookie=cookie)
    assert refused.status == 401
    assert (await refused.json())["detail"] == "this account is deactivated"
    minted = await sessions.stack.gateway.post(
        f"{API}/api-tokens", json={"name": "x"}, headers={"Cookie": cookie}
    )
    assert minted.status == 401
    assert await ki.db.fetchval("SELECT count(*) FROM api_token") == 0
